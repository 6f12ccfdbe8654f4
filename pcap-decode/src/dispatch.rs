//! Which parser a flow gets: recognition by content on any port, narrowed by the rules.
//!
//! The protocols are lists of candidates, asked in order; a new protocol (HTTP/2) is one
//! more entry. A TCP direction's first bytes are kept (a few hundred at most) until a
//! candidate recognises them or they are plainly none of them; a rule naming the port
//! outranks content, and a candidate's well-known port (53 for DNS) decides when content
//! does not.

use crate::decoder::DecodeConfig;
use crate::rules::Rules;
use crate::stream::{DatagramParser, Dir, Meta, ParserLimits, StreamParser};
use crate::{dns, http1, Proto};

/// What a flow needs to know of its decoder to pick a parser.
pub struct Ctx<'a> {
    pub config: &'a DecodeConfig,
    pub rules: &'a Rules,
    pub candidates: &'a Candidates,
    /// Port of side 0 and of side 1.
    pub ports: [u16; 2],
}

/// The protocols a decoder knows.
pub struct Candidates {
    pub streams: &'static [StreamCandidate],
    pub datagrams: &'static [DatagramCandidate],
}

/// Every protocol of this crate.
pub const CANDIDATES: Candidates = Candidates {
    streams: STREAM_CANDIDATES,
    datagrams: DATAGRAM_CANDIDATES,
};

/// A protocol a TCP connection can carry.
pub struct StreamCandidate {
    pub proto: Proto,
    /// Whether the first bytes one side sent start this protocol, and which side sent them.
    pub recognise: fn(&[u8]) -> Option<Dir>,
    /// The server port that names the protocol when content does not.
    pub well_known_port: Option<u16>,
    pub make: fn(&DecodeConfig) -> Box<dyn StreamParser>,
}

/// A protocol a UDP 5-tuple can carry.
pub struct DatagramCandidate {
    pub proto: Proto,
    pub recognise: fn(&[u8]) -> Option<Dir>,
    pub well_known_port: Option<u16>,
    pub make: fn(&DecodeConfig) -> Box<dyn DatagramParser>,
}

/// TCP protocols, in the order they are asked. HTTP/2 (prior knowledge: the client preface)
/// goes here when its parser exists.
pub const STREAM_CANDIDATES: &[StreamCandidate] = &[
    StreamCandidate {
        proto: Proto::Http,
        recognise: http1::recognise,
        well_known_port: None,
        make: |c| Box::new(http1::Http1Parser::new(limits(c, c.response_timeout_ns))),
    },
    StreamCandidate {
        proto: Proto::Dns,
        recognise: dns::recognise_stream,
        well_known_port: Some(53),
        make: |c| Box::new(dns::DnsTcp::new(limits(c, c.dns_timeout_ns))),
    },
];

/// UDP protocols, in the order they are asked.
pub const DATAGRAM_CANDIDATES: &[DatagramCandidate] = &[DatagramCandidate {
    proto: Proto::Dns,
    recognise: dns::recognise_datagram,
    well_known_port: Some(53),
    make: |c| Box::new(dns::DnsUdp::new(limits(c, c.dns_timeout_ns))),
}];

/// The limits a parser is built with: a quarter of the flow's bound per direction, so that
/// both directions' buffers leave room for out-of-order segments.
pub fn limits(config: &DecodeConfig, timeout_ns: i64) -> ParserLimits {
    ParserLimits {
        max_buffer: (config.max_flow_bytes / 4).max(1),
        max_header_value: config.max_header_value,
        max_pending: ParserLimits::default().max_pending,
        response_timeout_ns: timeout_ns,
    }
}

/// A side's bytes kept this long without a protocol recognised are none of them.
pub const GIVE_UP_BYTES: usize = 256;
/// Most bytes kept per side while recognising.
pub const KEEP_BYTES: usize = 2048;
/// Data deliveries (both sides) after which an unrecognised connection is ignored.
pub const GIVE_UP_DELIVERIES: u32 = 8;

/// The parser chosen for a connection, and its client side (0 or 1).
pub struct Choice<P: ?Sized> {
    pub parser: Box<P>,
    pub client: usize,
}

/// The protocol a rule names for one of the ports (`ports[side]`), as a parser whose server
/// is that side; the client side `known` (from the SYN) wins over the port.
pub fn stream_by_rule(ctx: &Ctx<'_>, known: Option<usize>) -> Option<Choice<dyn StreamParser>> {
    for server in [1, 0] {
        let Some(proto) = ctx.rules.port_hint(ctx.ports[server]) else {
            continue;
        };
        if let Some(c) = ctx.candidates.streams.iter().find(|c| c.proto == proto) {
            return Some(Choice {
                parser: (c.make)(ctx.config),
                client: known.unwrap_or(1 - server),
            });
        }
    }
    None
}

/// Asks every candidate about the first bytes `side` sent.
pub fn stream_by_content(
    ctx: &Ctx<'_>,
    first: &[u8],
    side: usize,
    known: Option<usize>,
) -> Option<Choice<dyn StreamParser>> {
    for c in ctx.candidates.streams {
        let Some(dir) = (c.recognise)(first) else {
            continue;
        };
        let said = if dir == Dir::ToServer { side } else { 1 - side };
        let client = known.unwrap_or(said);
        if ctx.rules.allows(c.proto, ctx.ports[1 - client]) {
            return Some(Choice {
                parser: (c.make)(ctx.config),
                client,
            });
        }
    }
    None
}

/// The candidate whose well-known port one side uses, when content told nothing.
pub fn stream_by_port(ctx: &Ctx<'_>, known: Option<usize>) -> Option<Choice<dyn StreamParser>> {
    for c in ctx.candidates.streams {
        let Some(port) = c.well_known_port else {
            continue;
        };
        for server in [1, 0] {
            if ctx.ports[server] == port && ctx.rules.allows(c.proto, port) {
                return Some(Choice {
                    parser: (c.make)(ctx.config),
                    client: known.unwrap_or(1 - server),
                });
            }
        }
    }
    None
}

/// Whether no rule lets any TCP protocol be decoded on either port: such a connection is
/// ignored from its first packet.
pub fn stream_excluded(ctx: &Ctx<'_>) -> bool {
    !ctx.candidates
        .streams
        .iter()
        .any(|c| ctx.ports.iter().any(|&p| ctx.rules.allows(c.proto, p)))
}

/// Whether no rule lets any UDP protocol be decoded on either port.
pub fn datagram_excluded(ctx: &Ctx<'_>) -> bool {
    !ctx.candidates
        .datagrams
        .iter()
        .any(|c| ctx.ports.iter().any(|&p| ctx.rules.allows(c.proto, p)))
}

/// The parser of a UDP 5-tuple, from a rule, the datagram's content or a well-known port;
/// `side` sent `payload`.
pub fn datagram(ctx: &Ctx<'_>, payload: &[u8], side: usize) -> Option<Choice<dyn DatagramParser>> {
    let make = |c: &DatagramCandidate, client| Choice {
        parser: (c.make)(ctx.config),
        client,
    };
    for server in [1, 0] {
        if let Some(proto) = ctx.rules.port_hint(ctx.ports[server]) {
            if let Some(c) = ctx.candidates.datagrams.iter().find(|c| c.proto == proto) {
                return Some(make(c, 1 - server));
            }
        }
    }
    for c in ctx.candidates.datagrams {
        if let Some(dir) = (c.recognise)(payload) {
            let client = if dir == Dir::ToServer { side } else { 1 - side };
            if ctx.rules.allows(c.proto, ctx.ports[1 - client]) {
                return Some(make(c, client));
            }
        }
        let Some(port) = c.well_known_port else {
            continue;
        };
        for server in [1, 0] {
            if ctx.ports[server] == port && ctx.rules.allows(c.proto, port) {
                return Some(make(c, 1 - server));
            }
        }
    }
    None
}

/// The first bytes of each side of a connection not yet recognised.
#[derive(Default)]
pub struct Recognition {
    /// In-order bytes from each side's start (or from where recognition began).
    pub first: [Vec<u8>; 2],
    /// The packet of each side's first bytes.
    pub meta: [Option<Meta>; 2],
    /// Bytes after a side stopped keeping them (after a hole, or past the give-up point):
    /// a hole for the parser, when one is chosen. `Some(None)`: of unknown size.
    pub lost: [Option<Option<u64>>; 2],
    /// A side whose start was not seen: its bytes follow an unknown hole.
    pub unknown_start: [bool; 2],
    /// FIN (false) or RST (true) seen, to replay after the bytes.
    pub ended: [Option<bool>; 2],
    pub deliveries: u32,
}

impl Recognition {
    /// Bytes kept.
    pub fn buffered(&self) -> usize {
        self.first[0].capacity() + self.first[1].capacity()
    }

    /// Whether `side` still keeps its bytes.
    pub fn keeps(&self, side: usize) -> bool {
        self.lost[side].is_none() && self.first[side].len() < GIVE_UP_BYTES
    }

    /// Keeps `bytes` of `side`, up to [`KEEP_BYTES`]; the rest is lost.
    pub fn keep(&mut self, side: usize, bytes: &[u8]) {
        let room = KEEP_BYTES.saturating_sub(self.first[side].len());
        let n = room.min(bytes.len());
        self.first[side].extend_from_slice(&bytes[..n]);
        if n < bytes.len() {
            self.lose(side, Some((bytes.len() - n) as u64));
        }
    }

    /// Bytes of `side` not kept.
    pub fn lose(&mut self, side: usize, len: Option<u64>) {
        self.lost[side] = Some(match (self.lost[side], len) {
            (None, len) => len,
            (Some(Some(a)), Some(b)) => Some(a.saturating_add(b)),
            _ => None,
        });
    }

    /// Whether the connection is none of the candidates: both sides gave up; or, when the
    /// connection's start was seen, one side gave up before the other sent anything; or
    /// enough data went by without a decision.
    pub fn hopeless(&self, start_seen: bool) -> bool {
        let done = |s: usize| self.lost[s].is_some() || self.first[s].len() >= GIVE_UP_BYTES;
        let silent = |s: usize| self.first[s].is_empty() && self.lost[s].is_none();
        (done(0) && done(1))
            || (start_seen && ((done(0) && silent(1)) || (done(1) && silent(0))))
            || self.deliveries >= GIVE_UP_DELIVERIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(config: &'a DecodeConfig, rules: &'a Rules, ports: [u16; 2]) -> Ctx<'a> {
        Ctx {
            config,
            rules,
            candidates: &CANDIDATES,
            ports,
        }
    }

    #[test]
    fn a_port_names_the_server_when_content_does_not() {
        let config = DecodeConfig::default();
        let rules = Rules::default();
        let c = stream_by_port(&ctx(&config, &rules, [40000, 53]), None).unwrap();
        assert_eq!(c.client, 0);
        let c = stream_by_port(&ctx(&config, &rules, [53, 40000]), None).unwrap();
        assert_eq!(c.client, 1);
        assert!(stream_by_port(&ctx(&config, &rules, [40000, 80]), None).is_none());
        let only_http = Rules::new(vec!["http".parse().unwrap()]);
        assert!(stream_by_port(&ctx(&config, &only_http, [40000, 53]), None).is_none());
        let d = datagram(&ctx(&config, &rules, [40000, 53]), b"", 0).unwrap();
        assert_eq!(d.client, 0);
        assert!(datagram(&ctx(&config, &only_http, [40000, 53]), b"", 0).is_none());
        assert!(datagram_excluded(&ctx(&config, &only_http, [40000, 53])));
    }

    #[test]
    fn a_rule_outranks_content_and_excludes_other_ports() {
        let config = DecodeConfig::default();
        let rules = Rules::new(vec!["dns:5300".parse().unwrap()]);
        let c = stream_by_rule(&ctx(&config, &rules, [5300, 40000]), None).unwrap();
        assert_eq!(c.client, 1);
        let c = stream_by_rule(&ctx(&config, &rules, [5300, 40000]), Some(0)).unwrap();
        assert_eq!(c.client, 0, "the SYN's client wins");
        assert!(stream_by_rule(&ctx(&config, &rules, [80, 40000]), None).is_none());
        assert!(stream_excluded(&ctx(&config, &rules, [80, 40000])));
        assert!(!stream_excluded(&ctx(&config, &rules, [5300, 40000])));
        let any = Rules::default();
        assert!(!stream_excluded(&ctx(&config, &any, [1, 2])));
    }

    #[test]
    fn recognition_gives_up_on_enough_bytes_or_deliveries() {
        let mut r = Recognition::default();
        assert!(!r.hopeless(true));
        r.first[0] = vec![0; GIVE_UP_BYTES];
        assert!(
            !r.hopeless(false),
            "mid-connection: the other side may still tell"
        );
        assert!(
            r.hopeless(true),
            "the client's first bytes are none of them"
        );
        r.lose(1, None);
        assert!(r.hopeless(false));
        let r = Recognition {
            deliveries: GIVE_UP_DELIVERIES,
            ..Recognition::default()
        };
        assert!(r.hopeless(false));
    }
}
