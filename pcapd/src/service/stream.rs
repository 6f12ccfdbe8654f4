//! Replay, Listen and Decode: open the stream in the registry, let [`crate::readout`] (and
//! for Decode, [`crate::decode`]) serve it, and convert what it sends into stream messages.
//! Record bytes are moved, never copied.

use pcap_core::api::v1 as api;
use pcap_core::domain::{DecodeSpec, ListenSpec, ReplaySpec};
use tokio_stream::adapters::Map;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

use super::{domain, PcapdService};
use crate::decode;
use crate::readout::{self, handoff, Chunk, Header, Item, Items};
use crate::registry::ReaderKind;

/// The stream type of both calls.
pub type MessageStream =
    Map<ReceiverStream<crate::Result<Item>>, fn(crate::Result<Item>) -> Message>;

type Message = Result<api::StreamMessage, Status>;

#[tracing::instrument(skip_all)]
pub async fn replay(
    s: &PcapdService,
    req: Request<api::ReplayRequest>,
) -> Result<Response<MessageStream>, Status> {
    // Only a caller on the local socket can be handed the segment files.
    let local_uid = req
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|i| i.peer_cred)
        .map(|c| c.uid());
    let spec: ReplaySpec = domain(req.into_inner())?;
    let permit = s.stream_permit()?;
    let src = s.registry.open_replay(&spec).await?;
    let reader = s
        .registry
        .reader_opened(src.id, ReaderKind::Replay, src.live.as_ref());
    if let Some(uid) = local_uid.filter(|_| handoff::applies(&spec)) {
        match handoff::Socket::bind(src.upto_seq) {
            Ok(socket) => {
                let items = handoff::replay(socket, src, &spec, uid, (permit, reader));
                return Ok(messages(items));
            }
            Err(e) => {
                tracing::info!(error = %e, "streaming a replay instead of handing its files over")
            }
        }
    }
    Ok(messages(readout::replay(src, &spec, (permit, reader))))
}

#[tracing::instrument(skip_all)]
pub async fn listen(
    s: &PcapdService,
    req: Request<api::ListenRequest>,
) -> Result<Response<MessageStream>, Status> {
    let spec: ListenSpec = domain(req.into_inner())?;
    let permit = s.stream_permit()?;
    let (id, link_type, snaplen, sub) = s.registry.open_listen(&spec).await?;
    let reader = s.registry.reader_opened(id, ReaderKind::Listen, Some(&sub));
    let header = Header {
        capture_id: id,
        link_type,
        snaplen,
    };
    Ok(messages(readout::listen(
        header,
        sub,
        &spec,
        (permit, reader),
    )))
}

fn messages(items: Items) -> Response<MessageStream> {
    let convert: fn(crate::Result<Item>) -> Message = |item| Ok(message(item?));
    Response::new(ReceiverStream::new(items).map(convert))
}

fn message(item: Item) -> api::StreamMessage {
    use api::stream_message::Kind;
    let notice = |kind| Kind::Notice(api::Notice { kind: Some(kind) });
    let kind = match item {
        Item::Header(h) => Kind::Header(api::StreamHeader {
            capture_id: h.capture_id,
            link_type: h.link_type,
            snaplen: h.snaplen,
            nanoseconds: true,
        }),
        Item::Chunk(Chunk::Records {
            records,
            count,
            last_seq,
            resolution,
        }) => Kind::Records(api::RecordBatch {
            count,
            records,
            last_sequence: last_seq,
            nanoseconds: resolution == pcap_core::savefile::Resolution::Nano,
        }),
        Item::Chunk(Chunk::Packets(packets)) => Kind::Packets(api::PacketBatch {
            packets: packets.into_iter().map(packet).collect(),
        }),
        Item::Handoff(offer) => Kind::Handoff(api::SegmentHandoff {
            socket: offer.socket,
            token: offer.token,
            upto_sequence: offer.upto_seq,
        }),
        Item::Gap(dropped) => notice(api::notice::Kind::Gap(api::Gap { dropped })),
        Item::State(state, reason) => notice(api::notice::Kind::State(api::StateChange {
            state: api::State::from(state).into(),
            reason,
        })),
    };
    api::StreamMessage { kind: Some(kind) }
}

fn packet(p: readout::Packet) -> api::Packet {
    api::Packet {
        timestamp_ns: p.ts_ns,
        captured_length: p.caplen,
        original_length: p.origlen,
        data: p.data,
        sequence: p.seq,
    }
}

/// The stream type of `Decode`.
pub type DecodeStream =
    Map<ReceiverStream<decode::Output>, fn(decode::Output) -> Result<api::DecodeMessage, Status>>;

/// Decode: roundtrips of a capture's spool, then with `live` of its new packets. Served like
/// a replay (the same permit, registration and readout), decoded on a thread of its own.
#[tracing::instrument(skip_all)]
pub async fn decode(
    s: &PcapdService,
    req: Request<api::DecodeRequest>,
) -> Result<Response<DecodeStream>, Status> {
    let spec: DecodeSpec = domain(req.into_inner())?;
    let permit = s.stream_permit()?;
    let src = s.registry.open_replay(&decode::replay_spec(&spec)).await?;
    let reader = s
        .registry
        .reader_opened(src.id, ReaderKind::Decode, src.live.as_ref());
    let outputs = decode::serve(src, &spec, (permit, reader))?;
    let convert: fn(decode::Output) -> Result<api::DecodeMessage, Status> = decode_message;
    Ok(Response::new(ReceiverStream::new(outputs).map(convert)))
}

fn decode_message(out: decode::Output) -> Result<api::DecodeMessage, Status> {
    use api::decode_message::Kind;
    let notice = |kind| Kind::Notice(api::Notice { kind: Some(kind) });
    let kind = match out {
        decode::Output::Header(h) => Kind::Header(api::DecodeHeader {
            capture_id: h.capture_id,
            link_type: h.link_type,
        }),
        decode::Output::Roundtrips(batch) => Kind::Roundtrips(api::RoundtripBatch {
            roundtrips: batch.iter().map(api::Roundtrip::from).collect(),
        }),
        decode::Output::Gap(dropped) => notice(api::notice::Kind::Gap(api::Gap { dropped })),
        decode::Output::State(state, reason) => {
            notice(api::notice::Kind::State(api::StateChange {
                state: api::State::from(state).into(),
                reason,
            }))
        }
        decode::Output::Failed(e) => return Err(Status::from(e)),
    };
    Ok(api::DecodeMessage { kind: Some(kind) })
}
