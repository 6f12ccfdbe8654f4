//! A conservative reading of a pcap-filter(7) expression, to tell from a segment's index
//! whether any of its packets can pass the filter. Understood: `host`, `net A/N` (and
//! `net a.b.c`), `port`, `portrange`, each with `src`/`dst` and a protocol (`ip`, `ip6`,
//! `tcp`, `udp`, `sctp`, `arp`, `rarp`), `proto N`; the protocols alone (`tcp`, `udp`,
//! `sctp`, `icmp`, `icmp6`, `igmp`, `ip`, `ip6`, `arp`, `rarp`); `and`/`&&`, `or`/`||`,
//! `not`/`!`, parentheses, and a bare address or number after `and`/`or` taking the
//! qualifiers before it (`port 80 or 443`), all as libpcap reads them (`and` and `or` of
//! equal precedence, from the left).
//!
//! A primitive is evaluated to [`Verdict::Never`] (no packet of the segment can match) or
//! [`Verdict::Maybe`]; `not` turns never into always, so `not host X` reads every segment.
//! Host names, service names and anything else in an operand position are "maybe"; a
//! keyword or form not understood at all makes the whole filter unreadable, and then no
//! segment is skipped. `src` and `dst` are read as either direction: the index keeps both
//! in one set. The filter text has been compiled by libpcap before it gets here, so only
//! valid expressions need reading right.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{layer, v4_key, SegmentIndex, ALL_BLOCKS};

/// Whether packets of a segment can pass a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No packet can: the segment need not be read.
    Never,
    /// Some packet might.
    Maybe,
    /// Every packet does.
    Always,
}

impl Verdict {
    fn not(self) -> Self {
        match self {
            Verdict::Never => Verdict::Always,
            Verdict::Always => Verdict::Never,
            Verdict::Maybe => Verdict::Maybe,
        }
    }
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Verdict::Never, _) | (_, Verdict::Never) => Verdict::Never,
            (Verdict::Always, Verdict::Always) => Verdict::Always,
            _ => Verdict::Maybe,
        }
    }
    fn or(self, other: Self) -> Self {
        match (self, other) {
            (Verdict::Always, _) | (_, Verdict::Always) => Verdict::Always,
            (Verdict::Never, Verdict::Never) => Verdict::Never,
            _ => Verdict::Maybe,
        }
    }
    fn from_may(may: bool) -> Self {
        if may {
            Verdict::Maybe
        } else {
            Verdict::Never
        }
    }
}

/// A filter expression as far as the index can judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pred {
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
    Not(Box<Pred>),
    /// Cannot be judged from the index (a host name, say).
    Unknown,
    /// An address under a prefix of `len` bits (128 for a host); IPv4 as mapped IPv6.
    Net(u128, u32),
    Ports(u16, u16),
    Proto(u8),
    Layer(u8),
}

impl Pred {
    fn eval(&self, ix: &SegmentIndex) -> Verdict {
        match self {
            Pred::And(a, b) => a.eval(ix).and(b.eval(ix)),
            Pred::Or(a, b) => a.eval(ix).or(b.eval(ix)),
            Pred::Not(a) => a.eval(ix).not(),
            Pred::Unknown => Verdict::Maybe,
            Pred::Net(prefix, len) => Verdict::from_may(ix.addrs.may_contain_net(*prefix, *len)),
            Pred::Ports(lo, hi) => Verdict::from_may(ix.has_port_in(*lo, *hi)),
            Pred::Proto(p) => Verdict::from_may(ix.has_proto(*p)),
            Pred::Layer(bit) => Verdict::from_may(ix.layers & bit != 0),
        }
    }

    /// The blocks of the segment indexed by `ix` that may hold a packet passing: by the
    /// blocks of the addresses named; what only the whole segment tells (ports, protocols,
    /// a negation) holds for all its blocks or none.
    fn blocks(&self, ix: &SegmentIndex) -> u64 {
        match self {
            Pred::And(a, b) => a.blocks(ix) & b.blocks(ix),
            Pred::Or(a, b) => a.blocks(ix) | b.blocks(ix),
            Pred::Net(prefix, len) => ix.addrs.blocks_of_net(*prefix, *len),
            _ if self.eval(ix) == Verdict::Never => 0,
            _ => ALL_BLOCKS,
        }
    }
}

/// A filter read for skipping segments; `None` from [`SegmentFilter::parse`] when the text
/// is not understood, and then every segment is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFilter(Pred);

impl SegmentFilter {
    /// Reads filter text; `None` if it is empty or not understood.
    pub fn parse(text: &str) -> Option<Self> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return None;
        }
        let mut p = Parser {
            tokens,
            at: 0,
            last: None,
        };
        let pred = p.expr()?;
        if p.at != p.tokens.len() {
            return None;
        }
        // A filter whose every primitive is unknown can never rule anything out.
        (pred != Pred::Unknown).then_some(SegmentFilter(pred))
    }

    /// Whether a packet of the segment indexed by `ix` can pass the filter.
    pub fn verdict(&self, ix: &SegmentIndex) -> Verdict {
        if ix.is_opaque() {
            return Verdict::Maybe;
        }
        self.0.eval(ix)
    }

    /// The blocks (bits, see [`SegmentIndex::blocks`]) of the segment indexed by `ix` that
    /// may hold a packet passing the filter; [`ALL_BLOCKS`] when the index cannot tell.
    pub fn blocks(&self, ix: &SegmentIndex) -> u64 {
        if ix.is_opaque() || ix.blocks.is_empty() {
            return ALL_BLOCKS;
        }
        self.0.blocks(ix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Not,
    And,
    Or,
}

fn tokenize(text: &str) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Tok::Open),
            ')' => out.push(Tok::Close),
            '!' if chars.peek() != Some(&'=') => out.push(Tok::Not),
            '&' if chars.next_if_eq(&'&').is_some() => out.push(Tok::And),
            '|' if chars.next_if_eq(&'|').is_some() => out.push(Tok::Or),
            c if is_word(c) => {
                let mut w = String::from(c);
                while let Some(c) = chars.next_if(|c| is_word(*c)) {
                    w.push(c);
                }
                out.push(match w.as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    _ => Tok::Word(w),
                });
            }
            // Arithmetic, comparisons, brackets, escapes: not read here.
            _ => return None,
        }
    }
    Some(out)
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '/' | '-' | '_')
}

/// The qualifiers of a primitive: `tcp dst port` is (Some(tcp), port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quals {
    proto: Option<&'static str>,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    Net,
    Port,
    PortRange,
    Proto,
}

const PROTOS: [&str; 10] = [
    "ip", "ip6", "tcp", "udp", "sctp", "icmp", "icmp6", "igmp", "arp", "rarp",
];

struct Parser {
    tokens: Vec<Tok>,
    at: usize,
    /// The qualifiers of the last primitive, for a bare operand after `and`/`or`.
    last: Option<Quals>,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn word(&self, offset: usize) -> Option<&str> {
        match self.tokens.get(self.at + offset) {
            Some(Tok::Word(w)) => Some(w),
            _ => None,
        }
    }

    /// expr := term ((and | or) term)*, left to right, of equal precedence.
    fn expr(&mut self) -> Option<Pred> {
        let mut left = self.term()?;
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.at += 1;
                    left = Pred::And(Box::new(left), Box::new(self.term()?));
                }
                Some(Tok::Or) => {
                    self.at += 1;
                    left = Pred::Or(Box::new(left), Box::new(self.term()?));
                }
                _ => return Some(left),
            }
        }
    }

    /// term := not term | ( expr ) | primitive
    fn term(&mut self) -> Option<Pred> {
        match self.peek()? {
            Tok::Not => {
                self.at += 1;
                Some(Pred::Not(Box::new(self.term()?)))
            }
            Tok::Open => {
                self.at += 1;
                let e = self.expr()?;
                (self.peek() == Some(&Tok::Close)).then_some(())?;
                self.at += 1;
                Some(e)
            }
            Tok::Word(_) => self.primitive(),
            _ => None,
        }
    }

    /// primitive := [proto] [dir] [kind] operand | proto | operand (with the last
    /// qualifiers).
    fn primitive(&mut self) -> Option<Pred> {
        let mut proto = None;
        if let Some(p) = self.word(0).and_then(|w| PROTOS.iter().find(|p| **p == w)) {
            proto = Some(*p);
            self.at += 1;
        }
        let dir = matches!(self.word(0), Some("src" | "dst"));
        if dir {
            self.at += 1;
            // `src or dst`, `src and dst`: either way both directions are one set here.
            if matches!(self.peek(), Some(Tok::And | Tok::Or))
                && matches!(self.word(1), Some("src" | "dst"))
            {
                self.at += 2;
            }
        }
        let kind = match self.word(0) {
            Some("host") => Some(Kind::Host),
            Some("net") => Some(Kind::Net),
            Some("port") => Some(Kind::Port),
            Some("portrange") => Some(Kind::PortRange),
            Some("proto") => Some(Kind::Proto),
            _ => None,
        };
        if kind.is_some() {
            self.at += 1;
        }
        let kind = match (kind, proto, dir) {
            (Some(k), _, _) => k,
            // A protocol on its own: `tcp`, `ip6`.
            (None, Some(p), false) => {
                self.last = None;
                return Some(proto_alone(p));
            }
            // `src 1.2.3.4` is a host.
            (None, None, true) => Kind::Host,
            // `tcp src 80`: libpcap's reading, not taken on here.
            (None, Some(_), true) => return None,
            // A bare operand: only after another primitive, with its qualifiers.
            (None, None, false) => {
                let last = self.last?;
                let operand = self.word(0)?.to_owned();
                if !operand.starts_with(|c: char| c.is_ascii_digit() || c == ':') {
                    return None;
                }
                self.at += 1;
                return Some(operand_pred(last, &operand));
            }
        };
        let quals = Quals { proto, kind };
        let operand = self.word(0)?.to_owned();
        self.at += 1;
        self.last = Some(quals);
        Some(operand_pred(quals, &operand))
    }
}

fn proto_alone(p: &str) -> Pred {
    match p {
        "ip" => Pred::Layer(layer::IPV4),
        "ip6" => Pred::Layer(layer::IPV6),
        "arp" | "rarp" => Pred::Layer(layer::ARP),
        "tcp" => Pred::Proto(6),
        "udp" => Pred::Proto(17),
        "sctp" => Pred::Proto(132),
        "icmp" => Pred::Proto(1),
        "icmp6" => Pred::Proto(58),
        "igmp" => Pred::Proto(2),
        _ => Pred::Unknown,
    }
}

/// What `quals operand` can match, as a predicate over the index.
fn operand_pred(q: Quals, operand: &str) -> Pred {
    let what = match q.kind {
        Kind::Host => host(operand),
        Kind::Net => net(operand),
        Kind::Port => number(operand).map_or(Pred::Unknown, |p| Pred::Ports(p, p)),
        Kind::PortRange => operand
            .split_once('-')
            .and_then(|(a, b)| Some((number(a)?, number(b)?)))
            .map_or(Pred::Unknown, |(a, b)| Pred::Ports(a.min(b), a.max(b))),
        Kind::Proto => number(operand)
            .and_then(|p| u8::try_from(p).ok())
            .map_or(Pred::Unknown, Pred::Proto),
    };
    // `tcp port 80` needs TCP and port 80 in the segment; `ip host X` needs IPv4 too.
    match q.proto.map(proto_alone) {
        Some(p) if q.kind != Kind::Proto => Pred::And(Box::new(p), Box::new(what)),
        _ => what,
    }
}

/// A port or protocol number: decimal as libpcap reads it (no octal, no hex here).
fn number(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

fn host(s: &str) -> Pred {
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        Pred::Net(v4_key(a.octets()), 128)
    } else if let Ok(a) = s.parse::<Ipv6Addr>() {
        Pred::Net(u128::from(a), 128)
    } else {
        // A name (resolved by libpcap, not here), or a form not read here.
        Pred::Unknown
    }
}

fn net(s: &str) -> Pred {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => match number(l) {
            Some(l) => (a, Some(u32::from(l))),
            None => return Pred::Unknown,
        },
        None => (s, None),
    };
    if let Ok(a) = addr.parse::<Ipv6Addr>() {
        return match len.unwrap_or(128) {
            l @ 0..=128 => Pred::Net(u128::from(a), l),
            _ => Pred::Unknown,
        };
    }
    let parts: Vec<&str> = addr.split('.').collect();
    let octets: Option<Vec<u8>> = parts
        .iter()
        .map(|p| number(p).and_then(|n| u8::try_from(n).ok()))
        .collect();
    let Some(octets) = octets.filter(|o| !o.is_empty() && o.len() <= 4) else {
        return Pred::Unknown;
    };
    let len = match len {
        // `net 10.1.2.3/8`: only with all four parts.
        Some(l) if octets.len() == 4 && l <= 32 => l,
        Some(_) => return Pred::Unknown,
        // `net 10.1` is 10.1.0.0/16.
        None => 8 * octets.len() as u32,
    };
    let mut a = [0u8; 4];
    a[..octets.len()].copy_from_slice(&octets);
    Pred::Net(v4_key(a), 96 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(addrs: &[&str], ports: &[u16], protos: &[u8], layers: u8) -> SegmentIndex {
        let mut ix = SegmentIndex::new(1);
        for a in addrs {
            match host(a) {
                Pred::Net(k, 128) => ix.addr(k),
                _ => panic!("{a}"),
            }
        }
        ports.iter().for_each(|p| ix.port(*p));
        protos.iter().for_each(|p| ix.proto(*p));
        ix.layers = layers;
        ix
    }

    fn verdict(filter: &str, ix: &SegmentIndex) -> Verdict {
        SegmentFilter::parse(filter)
            .unwrap_or_else(|| panic!("{filter:?} not understood"))
            .verdict(ix)
    }

    fn ix() -> SegmentIndex {
        index_of(
            &["127.0.0.5", "127.0.0.1", "::1"],
            &[80, 40000],
            &[6],
            layer::IPV4 | layer::IPV6,
        )
    }

    #[test]
    fn hosts_ports_and_protocols_rule_segments_out() {
        use Verdict::*;
        let ix = ix();
        for (f, v) in [
            ("host 127.0.0.5", Maybe),
            ("host 127.0.0.6", Never),
            ("src host 127.0.0.6", Never),
            ("dst host 127.0.0.5", Maybe),
            ("ip host 127.0.0.6", Never),
            ("host ::1", Maybe),
            ("host ::2", Never),
            ("ip6 host ::2", Never),
            ("net 127.0.0.0/8", Maybe),
            ("net 10.0.0.0/8", Never),
            ("net 127", Maybe),
            ("net 127.1", Never),
            ("port 80", Maybe),
            ("port 81", Never),
            ("tcp port 80", Maybe),
            ("udp port 80", Never),
            ("tcp dst port 81", Never),
            ("portrange 81-39999", Never),
            ("portrange 81-40000", Maybe),
            ("tcp", Maybe),
            ("udp", Never),
            ("icmp", Never),
            ("ip proto 6", Maybe),
            ("ip proto 17", Never),
            ("arp", Never),
            ("ip6", Maybe),
            ("host 127.0.0.5 and port 81", Never),
            ("host 127.0.0.6 && port 80", Never),
            ("host 127.0.0.6 or port 80", Maybe),
            ("host 127.0.0.6 || host 127.0.0.7", Never),
            ("host 127.0.0.6 or 127.0.0.5", Maybe),
            ("host 127.0.0.6 or 127.0.0.7", Never),
            ("port 81 or 82 or 80", Maybe),
            ("tcp port 81 or 82", Never),
            (
                "(host 127.0.0.6 or host 127.0.0.5) and (port 81 or port 82)",
                Never,
            ),
            ("host 127.0.0.5 and not port 80", Maybe),
            ("not host 127.0.0.6", Always),
            ("! host 127.0.0.5", Maybe),
            ("not not host 127.0.0.6", Never),
            ("host 127.0.0.6 and not host 127.0.0.6", Never),
            ("host localhost and port 81", Never),
            ("host localhost or port http", Maybe),
            ("src or dst host 127.0.0.6", Never),
            // Equal precedence, from the left: (host 5 or tcp) and port 81.
            ("host 127.0.0.5 or tcp and port 81", Never),
        ] {
            assert_eq!(verdict(f, &ix), v, "{f}");
        }
    }

    #[test]
    fn what_is_not_understood_reads_every_segment() {
        for f in [
            "",
            "host localhost",
            "tcp[13] & 2 != 0",
            "greater 100",
            "vlan and host 127.0.0.6",
            "ether host 00:11:22:33:44:55",
            "net 127.0.0.0 mask 255.0.0.0",
            "127.0.0.6",
            "host 127.0.0.6 and",
            "(host 127.0.0.6",
            "ip proto \\tcp",
            "tcp src 80",
        ] {
            let read = SegmentFilter::parse(f);
            assert!(
                read.is_none() || read.unwrap().verdict(&ix()) != Verdict::Never,
                "{f:?} ruled a segment out"
            );
        }
    }

    #[test]
    fn odd_numbers_are_not_guessed() {
        let ix = ix();
        // Octal and hex ports, short host forms: libpcap's readings are left to libpcap.
        for f in [
            "port 0120",
            "port 0x50",
            "host 127.1",
            "portrange 80",
            "net 127.0/8",
        ] {
            assert_eq!(SegmentFilter::parse(f), None, "{f}");
            let f = format!("tcp and {f}");
            assert_eq!(verdict(&f, &ix), Verdict::Maybe, "{f}");
        }
    }

    #[test]
    fn unknown_link_types_rule_nothing_out() {
        let mut ix = ix();
        ix.layers |= layer::OPAQUE;
        assert_eq!(verdict("host 127.0.0.6", &ix), Verdict::Maybe);
    }

    /// An Ethernet frame of a UDP datagram from `src` to `dst`, port 40000 to `dport`.
    fn udp4(src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[0, 8, 0, 0]);
        f
    }

    #[test]
    fn host_filters_name_the_blocks_their_hosts_are_in() {
        let mut ix = SegmentIndex::new(1);
        ix.set_block_size(64 << 10); // 1 KiB blocks
                                     // 10.0.0.1 talks to 10.0.0.9 in blocks 0 and 1, 10.0.0.2 to 10.0.0.9 in block 3.
        let frames = [
            (0, udp4([10, 0, 0, 1], [10, 0, 0, 9], 53)),
            (1500, udp4([10, 0, 0, 1], [10, 0, 0, 9], 53)),
            (3100, udp4([10, 0, 0, 2], [10, 0, 0, 9], 80)),
        ];
        for (seq, (offset, f)) in frames.iter().enumerate() {
            ix.observe_at(f, 24 + offset, seq as u64 + 1);
        }
        assert_eq!(ix.blocks.len(), 4);
        assert_eq!(ix.blocks[2], ix.blocks[3], "nothing starts in block 2");
        let blocks = |f: &str| SegmentFilter::parse(f).unwrap().blocks(&ix);
        assert_eq!(blocks("host 10.0.0.1"), 0b0011);
        assert_eq!(blocks("src host 10.0.0.2"), 0b1000);
        assert_eq!(blocks("host 10.0.0.1 or host 10.0.0.2"), 0b1011);
        assert_eq!(blocks("host 10.0.0.1 and host 10.0.0.2"), 0);
        assert_eq!(blocks("host 10.0.0.9"), 0b1011);
        assert_eq!(blocks("net 10.0.0.0/30"), 0b1011);
        assert_eq!(blocks("host 10.0.0.7"), 0);
        // Ports, protocols and negations are known for the whole segment only.
        assert_eq!(blocks("host 10.0.0.2 and port 80"), 0b1000);
        assert_eq!(blocks("host 10.0.0.2 and port 5353"), 0);
        assert_eq!(blocks("port 53"), ALL_BLOCKS);
        assert_eq!(blocks("not host 10.0.0.1"), ALL_BLOCKS);
        assert_eq!(blocks("host 10.0.0.1 or port 80"), ALL_BLOCKS);
        // Without block starts (rebuilt without offsets, or an older file): every block.
        let mut whole = SegmentIndex::new(1);
        whole.observe(&frames[0].1);
        assert_eq!(
            SegmentFilter::parse("host 10.0.0.1")
                .unwrap()
                .blocks(&whole),
            ALL_BLOCKS
        );
    }
}
