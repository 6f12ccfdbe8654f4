//! Replay and Listen: a header, then batches of packets and in-band notices. The spool is
//! read on the blocking pool with back-pressure from the client; live packets come from
//! the capture's fan-out queue, which never makes the capture wait.

use pcap_core::api::v1 as api;
use pcap_core::domain::{ListenSpec, ReplaySpec};
use pcap_core::savefile::RecordHeader;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{domain, PcapdService};
use crate::batch::{Batcher, Format, Pick};
use crate::capture::live::{LiveItem, Subscription};
use crate::registry::ReaderKind;
use crate::spool::reader::{self, ReplayRange};

/// The stream type of both calls.
pub type MessageStream = ReceiverStream<Result<api::StreamMessage, Status>>;

/// Messages buffered towards one client.
const CLIENT_QUEUE: usize = 8;

type Tx = mpsc::Sender<Result<api::StreamMessage, Status>>;

fn message(kind: api::stream_message::Kind) -> Result<api::StreamMessage, Status> {
    Ok(api::StreamMessage { kind: Some(kind) })
}

fn header(capture_id: u64, link_type: u32, snaplen: u32) -> Result<api::StreamMessage, Status> {
    message(api::stream_message::Kind::Header(api::StreamHeader {
        capture_id,
        link_type,
        snaplen,
    }))
}

fn notice(kind: api::notice::Kind) -> Result<api::StreamMessage, Status> {
    message(api::stream_message::Kind::Notice(api::Notice {
        kind: Some(kind),
    }))
}

#[tracing::instrument(skip_all)]
pub async fn replay(
    s: &PcapdService,
    req: Request<api::ReplayRequest>,
) -> Result<Response<MessageStream>, Status> {
    let spec: ReplaySpec = domain(req.into_inner())?;
    let format = Format::raw(spec.raw_records);
    let permit = s.stream_permit()?;
    let mut src = s.registry.open_replay(&spec).await?;
    let reader = s
        .registry
        .reader_opened(src.id, ReaderKind::Replay, src.live.as_ref());
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    tx.send(header(src.id, src.link_type, src.snaplen))
        .await
        .ok();
    tokio::spawn(async move {
        let _permit = permit;
        let _reader = reader;
        let range = ReplayRange {
            since_ns: spec.since_unix_ns,
            until_ns: spec.until_unix_ns,
            upto_seq: src.upto_seq,
        };
        let live = src.live.take();
        let spool_tx = tx.clone();
        let read = tokio::task::spawn_blocking(move || {
            let r = reader::replay(
                &src.dir,
                &src.catalog,
                range,
                src.filter.as_ref(),
                format,
                |kind| spool_tx.blocking_send(message(kind)).is_ok(),
            );
            (r, src.filter)
        })
        .await;
        let filter = match read {
            Ok((Ok(n), filter)) => {
                tracing::debug!(capture.id = src.id, packets = n, "spool replayed");
                filter
            }
            Ok((Err(e), _)) => {
                let _ = tx.send(Err(Status::from(e))).await;
                return;
            }
            Err(e) => {
                let _ = tx
                    .send(Err(Status::internal(format!("replay failed: {e}"))))
                    .await;
                return;
            }
        };
        if let Some(sub) = live {
            let wanted = Wanted {
                after_seq: range.upto_seq,
                since_ns: range.since_ns,
                until_ns: range.until_ns,
                filter,
                count: None,
            };
            forward(sub, tx, wanted, format).await;
        }
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}

#[tracing::instrument(skip_all)]
pub async fn listen(
    s: &PcapdService,
    req: Request<api::ListenRequest>,
) -> Result<Response<MessageStream>, Status> {
    let spec: ListenSpec = domain(req.into_inner())?;
    let format = Format::raw(spec.raw_records);
    let permit = s.stream_permit()?;
    let count = spec.count;
    let (id, link_type, snaplen, sub) = s.registry.open_listen(&spec).await?;
    let reader = s.registry.reader_opened(id, ReaderKind::Listen, Some(&sub));
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    tx.send(header(id, link_type, snaplen)).await.ok();
    let wanted = Wanted {
        after_seq: 0,
        since_ns: None,
        until_ns: None,
        filter: None,
        count,
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _reader = reader;
        forward(sub, tx, wanted, format).await
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}

/// Which live packets a stream passes on.
struct Wanted {
    after_seq: u64,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
    filter: Option<pcap::BpfProgram>,
    count: Option<u64>,
}

impl Wanted {
    fn pick(&mut self, seq: u64, h: &RecordHeader, data: &[u8]) -> Pick {
        let ts_ns = h.ts_ns();
        if self.count == Some(0) || self.until_ns.is_some_and(|u| ts_ns > u) {
            return Pick::Stop;
        }
        if seq <= self.after_seq
            || self.since_ns.is_some_and(|s| ts_ns < s)
            || self.filter.as_ref().is_some_and(|f| !f.filter(data))
        {
            return Pick::Skip;
        }
        if let Some(left) = self.count.as_mut() {
            *left -= 1;
        }
        Pick::Take
    }
}

/// Passes live packets to the client until the capture stops, the client leaves, or the
/// stream has what it wanted.
async fn forward(mut sub: Subscription, tx: Tx, mut w: Wanted, format: Format) {
    let mut batcher = Batcher::new(format);
    let mut out = Vec::new();
    loop {
        let item = tokio::select! {
            item = sub.recv() => item,
            _ = tx.closed() => return,
        };
        let Some(item) = item else { return };
        let msg = match item {
            LiveItem::Packets(batch) => {
                let mut gather = |kind| {
                    out.push(kind);
                    true
                };
                let more = batcher.walk(
                    &batch.records,
                    batch.first_seq,
                    |seq, h, data| w.pick(seq, h, data),
                    &mut gather,
                );
                // Live packets go out at once: a reader is waiting for them.
                batcher.ship(&mut gather);
                for kind in out.drain(..) {
                    if tx.send(message(kind)).await.is_err() {
                        return;
                    }
                }
                if more.is_none() || w.count == Some(0) {
                    return;
                }
                continue;
            }
            LiveItem::Gap(dropped) => notice(api::notice::Kind::Gap(api::Gap { dropped })),
            LiveItem::State(state, reason) => notice(api::notice::Kind::State(api::StateChange {
                state: api::State::from(state).into(),
                reason,
            })),
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}
