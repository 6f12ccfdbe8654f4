//! Reading a capture out to one client: `Replay` (the spool, then with `--live` new packets
//! from right after it) and `Listen` (new packets only). Each stream is a task that sends
//! [`Item`]s through a short queue: the spool is read on the blocking pool at the pace the
//! client takes it; live packets come from the capture's fan-out queue, which never makes
//! the capture wait, and go out at once.

mod batch;
pub mod handoff;
mod select;
mod spool;

use bytes::Bytes;
use pcap_core::domain::{CaptureId, ListenSpec, ReplaySpec, State};
use pcap_core::savefile::Resolution;
use tokio::sync::mpsc;

use batch::{Batcher, Format};
use select::Selection;

use crate::capture::live::{LiveItem, Subscription};
use crate::registry::ReplaySource;
use crate::{Error, Result};

/// Items buffered towards one client.
pub(crate) const CLIENT_QUEUE: usize = 8;

/// What a stream hands its client, in order: a header, then chunks and notices.
#[derive(Debug)]
pub enum Item {
    Header(Header),
    Chunk(Chunk),
    /// This many packets were skipped because the client read too slowly.
    Gap(u64),
    /// The capture changed state (a stopping state ends the stream).
    State(State, String),
    /// Where the client fetches the segment files (the only item after the header).
    Handoff(handoff::Offer),
}

/// What a client needs to write a savefile. Live records are always in nanoseconds;
/// spooled ones in the unit of their segment, which each chunk says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub capture_id: CaptureId,
    pub link_type: u32,
    pub snaplen: u32,
}

/// Records picked for a client, in the format it asked for.
#[derive(Debug)]
pub enum Chunk {
    /// Savefile records back to back, exactly as spooled.
    Records {
        records: Bytes,
        count: u32,
        /// Sequence number of the last record (records may have been skipped between).
        last_seq: u64,
        /// The unit of the record times.
        resolution: Resolution,
    },
    /// The same records taken apart, their data shared with the records read.
    Packets(Vec<Packet>),
}

/// One record taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub seq: u64,
    pub ts_ns: i64,
    pub caplen: u32,
    pub origlen: u32,
    pub data: Bytes,
}

impl Chunk {
    /// Packets in the chunk.
    pub fn count(&self) -> u64 {
        match self {
            Chunk::Records { count, .. } => u64::from(*count),
            Chunk::Packets(p) => p.len() as u64,
        }
    }
}

/// The receiving end of a stream; it ends after an error, or when the stream has nothing
/// more to send.
pub type Items = mpsc::Receiver<Result<Item>>;

type Tx = mpsc::Sender<Result<Item>>;

/// Streams the replay `spec` of `src`: its spool up to where it ended when the replay
/// began, then, when `src` has a live queue, the packets after that. `hold` is kept for as
/// long as the stream is served (a stream permit, the reader's registration).
pub fn replay(src: ReplaySource, spec: &ReplaySpec, hold: impl Send + 'static) -> Items {
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let format = Format::raw(spec.raw_records);
    let ReplaySource {
        id,
        link_type,
        snaplen,
        dir,
        catalog,
        upto_seq,
        filter,
        live,
    } = src;
    let mut sel = Selection::replay(spec, upto_seq, filter);
    let header = Header {
        capture_id: id,
        link_type,
        snaplen,
    };
    tokio::spawn(async move {
        let _hold = hold;
        if tx.send(Ok(Item::Header(header))).await.is_err() {
            return;
        }
        let spool_tx = tx.clone();
        let read = tokio::task::spawn_blocking(move || {
            let shipped =
                spool::replay_spool(&dir, &catalog, link_type, &mut sel, format, |chunk| {
                    spool_tx.blocking_send(Ok(Item::Chunk(chunk))).is_ok()
                });
            (shipped, sel)
        })
        .await;
        let mut sel = match read {
            Ok((Ok(n), sel)) => {
                tracing::debug!(capture.id = id, packets = n, "spool replayed");
                sel
            }
            Ok((Err(e), _)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Err(e) => {
                let e = Error::Internal(format!("reading the spool of capture {id} failed: {e}"));
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        if let Some(sub) = live {
            sel.hand_over();
            forward(sub, &tx, sel, format).await;
        }
    });
    rx
}

/// Streams the packets `spec` asks for from the live queue `sub` of the capture `header`
/// describes; `hold` as for [`replay`].
pub fn listen(
    header: Header,
    sub: Subscription,
    spec: &ListenSpec,
    hold: impl Send + 'static,
) -> Items {
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let format = Format::raw(spec.raw_records);
    let sel = Selection::listen(spec);
    tokio::spawn(async move {
        let _hold = hold;
        if tx.send(Ok(Item::Header(header))).await.is_ok() {
            forward(sub, &tx, sel, format).await;
        }
    });
    rx
}

/// Passes live packets on until the capture stops, the client leaves, or the stream has
/// what it wanted.
async fn forward(mut sub: Subscription, tx: &Tx, mut sel: Selection, format: Format) {
    let mut batcher = Batcher::new(format);
    let mut out = Vec::new();
    while !tx.is_closed() {
        let item = tokio::select! {
            item = sub.recv() => item,
            _ = tx.closed() => return,
        };
        let item = match item {
            None => return,
            Some(LiveItem::Gap(dropped)) => Item::Gap(dropped),
            Some(LiveItem::State(state, reason)) => Item::State(state, reason),
            Some(LiveItem::Packets(batch)) => {
                let mut gather = |chunk| {
                    out.push(chunk);
                    true
                };
                let pick = |seq, ts_ns, data: &_| sel.pick(seq, ts_ns, data);
                let more = batcher.walk(
                    &batch.records,
                    batch.first_seq,
                    Resolution::Nano,
                    pick,
                    &mut gather,
                );
                // Live packets go out at once: a reader is waiting for them.
                batcher.ship(&mut gather);
                for chunk in out.drain(..) {
                    if tx.send(Ok(Item::Chunk(chunk))).await.is_err() {
                        return;
                    }
                }
                if more.is_none() || sel.is_done() {
                    return;
                }
                continue;
            }
        };
        if tx.send(Ok(item)).await.is_err() {
            return;
        }
    }
}
