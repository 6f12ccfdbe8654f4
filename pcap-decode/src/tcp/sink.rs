//! Where a connection's bytes go: to recognition while the protocol is not known (which
//! keeps each side's first bytes), then to the chosen parser, which first gets what
//! recognition kept.

use crate::dispatch::{self, Choice, Ctx, Recognition};
use crate::stream::{Dir, Exchange, Meta, StreamParser};

use super::reassembly::Event;

/// What a flow's bytes go to.
pub enum Sink {
    Recognising(Box<Recognition>),
    Parser(Box<dyn StreamParser>),
    /// None of the protocols (or none the rules allow): packets only keep the flow alive.
    Ignored,
}

/// The direction of bytes `side` sends.
pub fn dir(client: Option<usize>, side: usize) -> Dir {
    if client == Some(side) {
        Dir::ToServer
    } else {
        Dir::ToClient
    }
}

/// Hands one event of `side` to the parser, or to recognition (which may pick a parser).
#[allow(clippy::too_many_arguments)]
pub fn deliver(
    sink: &mut Sink,
    client: &mut Option<usize>,
    side: usize,
    ev: Event<'_>,
    meta: Meta,
    start_seen: bool,
    ctx: &Ctx<'_>,
    out: &mut Vec<Exchange>,
) {
    let r = match sink {
        Sink::Parser(p) => {
            let d = dir(*client, side);
            match ev {
                Event::Data(bytes, m) => p.data(d, bytes, m, out),
                Event::Hole(len) => p.hole(d, len, meta, out),
                Event::End(reset) => p.end(d, reset, meta, out),
            }
            return;
        }
        Sink::Ignored => return,
        Sink::Recognising(r) => r,
    };
    let mut choice = None;
    let mut pass_on = None;
    match ev {
        Event::Data(bytes, m) => {
            r.deliveries += 1;
            if r.keeps(side) && r.first[side].is_empty() {
                // The common case: the first segment tells; nothing is copied.
                r.meta[side] = Some(m);
                choice = dispatch::stream_by_content(ctx, bytes, side, *client);
                if choice.is_some() {
                    pass_on = Some((bytes, m));
                } else {
                    r.keep(side, bytes);
                }
            } else if r.keeps(side) {
                r.keep(side, bytes);
                choice = dispatch::stream_by_content(ctx, &r.first[side], side, *client);
            } else {
                r.lose(side, Some(bytes.len() as u64));
            }
            if choice.is_none() && r.hopeless(start_seen) {
                choice = dispatch::stream_by_port(ctx, *client);
                if choice.is_none() {
                    *sink = Sink::Ignored;
                    return;
                }
            }
        }
        Event::Hole(len) => {
            if r.first[side].is_empty() && r.lost[side].is_none() {
                r.unknown_start[side] = true;
            } else {
                r.lose(side, len);
            }
        }
        Event::End(reset) => r.ended[side] = Some(reset),
    }
    if let Some(choice) = choice {
        let r = std::mem::take(r);
        let mut p = install(choice, *r, client, meta, out);
        if let Some((bytes, m)) = pass_on {
            p.data(dir(*client, side), bytes, m, out);
        }
        *sink = Sink::Parser(p);
    }
}

/// The chosen parser, given what recognition kept: each side's first bytes (the side that
/// spoke first first), holes for what was not kept, and the ends seen.
pub fn install(
    choice: Choice<dyn StreamParser>,
    r: Recognition,
    client: &mut Option<usize>,
    meta: Meta,
    out: &mut Vec<Exchange>,
) -> Box<dyn StreamParser> {
    *client = Some(choice.client);
    let mut p = choice.parser;
    let mut order = [0, 1];
    order.sort_by_key(|&s| r.meta[s].map_or(u64::MAX, |m| m.seq));
    for s in order {
        let d = dir(*client, s);
        let m = r.meta[s].unwrap_or(meta);
        if r.unknown_start[s] {
            p.hole(d, None, m, out);
        }
        if !r.first[s].is_empty() {
            p.data(d, &r.first[s], m, out);
        }
        if let Some(len) = r.lost[s] {
            p.hole(d, len, meta, out);
        }
    }
    for s in order {
        if let Some(reset) = r.ended[s] {
            p.end(dir(*client, s), reset, meta, out);
        }
    }
    p
}
