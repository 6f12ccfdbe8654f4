//! A tracked flow: its id, its two endpoints, its TCP or UDP state, and the notes it owes
//! its next roundtrip; and how a parser's [`Exchange`] becomes a [`Roundtrip`].

use std::net::SocketAddr;

use crate::roundtrip::{Proto, Roundtrip};
use crate::stream::{Detail, Exchange};
use crate::tcp::TcpConn;
use crate::udp::UdpFlow;

/// Most notes a flow keeps for its next roundtrip (a flow that reports nothing for a long
/// time must not collect them without bound).
const MAX_NOTES: usize = 4;

/// The transport state of a flow.
pub enum Transport {
    Tcp(TcpConn),
    Udp(UdpFlow),
}

/// One flow of the table.
pub struct Flow {
    pub id: u64,
    /// Side 0 sent the flow's first packet.
    pub addrs: [SocketAddr; 2],
    pub transport: Transport,
    /// Bytes counted against the decoder's total when last measured.
    pub buffered: usize,
    /// Notes for the next roundtrip of this flow (a differing retransmission, a gap).
    pub notes: Vec<String>,
    /// A differing overlap was already noted.
    pub noted_overlap: bool,
}

impl Flow {
    /// A flow whose first packet went from `src` to `dst`.
    pub fn new(id: u64, src: SocketAddr, dst: SocketAddr, transport: Transport) -> Flow {
        Flow {
            id,
            addrs: [src, dst],
            transport,
            buffered: 0,
            notes: Vec::new(),
            noted_overlap: false,
        }
    }

    /// Port of side 0 and of side 1.
    pub fn ports(&self) -> [u16; 2] {
        [self.addrs[0].port(), self.addrs[1].port()]
    }

    /// The side `src` is.
    pub fn side(&self, src: SocketAddr) -> usize {
        usize::from(self.addrs[0] != src)
    }

    /// Bytes held now.
    pub fn measure(&self) -> usize {
        match &self.transport {
            Transport::Tcp(c) => c.buffered(),
            Transport::Udp(u) => u.buffered(),
        }
    }

    /// Whether something is decoded or may still be: dropping it would lose roundtrips.
    pub fn active(&self) -> bool {
        match &self.transport {
            Transport::Tcp(c) => c.active(),
            Transport::Udp(u) => u.decoded(),
        }
    }

    /// Keeps `note` for the next roundtrip, unless enough are waiting.
    pub fn add_note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        }
    }

    /// Takes note of what reassembly saw in the last packet that a reader should know.
    pub fn note_anomalies(&mut self, max_flow_bytes: usize) {
        let Transport::Tcp(conn) = &mut self.transport else {
            return;
        };
        let (differs, skipped) = conn.take_anomalies();
        if differs && !self.noted_overlap {
            self.noted_overlap = true;
            self.add_note(
                "retransmitted bytes differ from the first copy seen; the first copy was decoded"
                    .to_string(),
            );
        }
        if skipped > 0 {
            self.add_note(format!(
                "{skipped} bytes never arrived while out-of-order data filled this flow's \
                 buffer (max_flow_bytes = {max_flow_bytes}); decoding went on after them"
            ));
        }
    }

    /// Turns the parser's exchanges in `scratch` into roundtrips in `out`; `extra` is a note
    /// every one of them gets (and makes it incomplete).
    pub fn emit(
        &mut self,
        scratch: &mut Vec<Exchange>,
        out: &mut Vec<Roundtrip>,
        roundtrips: &mut u64,
        extra: Option<&str>,
    ) {
        if scratch.is_empty() {
            return;
        }
        let ports = self.ports();
        let client = match &self.transport {
            Transport::Tcp(c) => c.client(ports),
            Transport::Udp(u) => u.client(ports),
        };
        for ex in scratch.drain(..) {
            let Some(mut rt) = roundtrip(ex, self.id, self.addrs[client], self.addrs[1 - client])
            else {
                continue;
            };
            if !self.notes.is_empty() {
                rt.notes.append(&mut self.notes);
            }
            if let Some(note) = extra {
                rt.complete = false;
                rt.notes.push(note.to_string());
            }
            *roundtrips += 1;
            out.push(rt);
        }
    }
}

/// The roundtrip of an exchange; none for an exchange without a protocol part.
pub fn roundtrip(
    ex: Exchange,
    flow: u64,
    client: SocketAddr,
    server: SocketAddr,
) -> Option<Roundtrip> {
    let mut rt = Roundtrip {
        ts_ns: ex.start.ts_ns,
        duration_ns: u64::try_from(ex.end.ts_ns.saturating_sub(ex.start.ts_ns)).unwrap_or(0),
        proto: Proto::Http,
        client,
        server,
        flow,
        packets: [ex.start.seq, ex.end.seq],
        complete: ex.complete,
        notes: ex.notes,
        http: None,
        dns: None,
        http2: None,
        grpc: None,
    };
    match ex.detail {
        Detail::None => return None,
        Detail::Http(h) => rt.http = Some(h),
        Detail::Dns(d) => {
            rt.proto = Proto::Dns;
            rt.dns = Some(d);
        }
        Detail::Http2(h) => {
            rt.proto = Proto::Http2;
            rt.http2 = Some(h);
        }
        Detail::Grpc(h, g) => {
            rt.proto = Proto::Grpc;
            rt.http2 = Some(h);
            rt.grpc = Some(g);
        }
    }
    Some(rt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roundtrip::{GrpcCall, Http2Exchange};
    use crate::stream::Meta;

    #[test]
    fn an_exchange_becomes_a_roundtrip() {
        let ex = Exchange {
            start: Meta { ts_ns: 100, seq: 3 },
            end: Meta { ts_ns: 50, seq: 9 },
            complete: true,
            notes: vec!["n".into()],
            detail: Detail::Grpc(Http2Exchange::default(), GrpcCall::default()),
        };
        let c: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let s: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let rt = roundtrip(ex, 7, c, s).unwrap();
        assert_eq!(
            (rt.ts_ns, rt.duration_ns, rt.packets, rt.flow),
            (100, 0, [3, 9], 7)
        );
        assert_eq!(rt.proto, Proto::Grpc);
        assert!(rt.http2.is_some() && rt.grpc.is_some() && rt.http.is_none());
        assert_eq!((rt.client, rt.server), (c, s));
        assert!(roundtrip(Exchange::default(), 1, c, s).is_none());
    }
}
