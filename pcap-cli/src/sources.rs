//! The captures one `replay` or `listen` reads, each a stream of its own. Every source is
//! opened (its daemon reached, the capture found, the stream's header read) before anything
//! is written, so that a wrong alias or an unreachable remote stops the command with its
//! name and no output. Each stream is then read by a task of its own into a short queue:
//! a merge takes packets from every queue, and a source that runs ahead waits there. The
//! segment files a local daemon hands over for a replay are read on a thread of their own
//! into the same kind of queue (see `handoff.rs`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use bytes::Bytes;
use pcap_core::api::v1::{self as api, stream_message::Kind};
use pcap_core::domain::{CaptureInfo, ListenSpec, ReplaySpec, Selector};
use pcap_core::savefile::Resolution;
use tokio::sync::{mpsc, Notify};
use tonic::Streaming;

use crate::handoff::{Bounds, Handoff};
use crate::rpc::status_error;
use crate::target::{Endpoint, Targets};

/// How long to wait for the daemon's reason after a handoff ended too soon.
const REASON_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Batches one source may have waiting to be merged: with batches of at most 256 KiB, a
/// source ahead of the others holds about a megabyte here (more waits in the daemon).
const QUEUE: usize = 4;

/// What is asked of every source.
#[derive(Debug, Clone)]
pub enum Request {
    Replay(ReplaySpec),
    Listen(ListenSpec),
}

/// One capture being read, as the user named it.
pub struct Source {
    /// As typed: `web`, `lab:web`, `3`.
    pub label: String,
    pub endpoint: Endpoint,
    pub selector: Selector,
    pub header: api::StreamHeader,
    stream: Option<Streaming<api::StreamMessage>>,
    /// A message read ahead of the others (after the header, to see whether the daemon
    /// handed the segment files over).
    ahead: Option<Result<Option<api::StreamMessage>, tonic::Status>>,
    /// The segment files handed over, to read here instead of the stream's records.
    handoff: Option<(Handoff, Bounds)>,
}

/// What a source's task hands the merge.
#[derive(Debug)]
pub enum Event {
    Records(Batch),
    Notice(api::Notice),
    /// The stream ended: `None` as it should, or the error that broke it.
    End(Option<String>),
}

/// Savefile records as one message carried them.
#[derive(Debug, Clone)]
pub struct Batch {
    pub records: Bytes,
    pub resolution: Resolution,
    pub count: u32,
    /// When it reached this program (the merge of live streams holds packets from then).
    pub arrived: Instant,
}

impl Source {
    /// Opens the stream of the capture `label` names (`[REMOTE:]ID|ALIAS`, which is
    /// `selector` on `endpoint`) and reads its header. `request`'s selector is replaced.
    pub async fn open(
        targets: &Targets,
        label: &str,
        (endpoint, selector): (Endpoint, Selector),
        request: &Request,
    ) -> Result<Source> {
        let mut client = targets.connect(&endpoint).await?;
        let call = match request {
            Request::Replay(spec) => {
                let spec = ReplaySpec {
                    selector: selector.clone(),
                    // Only a daemon on this host can hand its files over.
                    segment_handoff: spec.segment_handoff && matches!(endpoint, Endpoint::Unix(_)),
                    ..spec.clone()
                };
                client.replay(api::ReplayRequest::from(&spec)).await
            }
            Request::Listen(spec) => {
                let spec = ListenSpec {
                    selector: selector.clone(),
                    ..spec.clone()
                };
                client.listen(api::ListenRequest::from(&spec)).await
            }
        };
        let mut stream = call.map_err(status_error(&endpoint))?.into_inner();
        let header = match stream
            .message()
            .await
            .map_err(status_error(&endpoint))?
            .and_then(|m| m.kind)
        {
            Some(Kind::Header(h)) => h,
            Some(_) => anyhow::bail!(
                "pcapd sent packets before the stream header; this pcap cannot read it"
            ),
            None => anyhow::bail!("pcapd ended the stream before sending its header"),
        };
        let mut source = Source {
            label: label.to_owned(),
            endpoint,
            selector,
            header,
            stream: Some(stream),
            ahead: None,
            handoff: None,
        };
        match request {
            Request::Replay(spec)
                if spec.segment_handoff && matches!(source.endpoint, Endpoint::Unix(_)) =>
            {
                if source.take_offer(spec).await? {
                    return Ok(source);
                }
                // Another network namespace than pcapd's, or refused: have them streamed.
                let named = (source.endpoint.clone(), source.selector.clone());
                drop(source);
                let streamed = Request::Replay(ReplaySpec {
                    segment_handoff: false,
                    ..spec.clone()
                });
                Box::pin(Source::open(targets, label, named, &streamed)).await
            }
            _ => Ok(source),
        }
    }

    /// Reads what follows the header of a replay that asked for the segment files: takes
    /// the files when they are offered, or keeps the message for the stream's reader when
    /// the daemon streams them. False when the offer could not be taken up.
    async fn take_offer(&mut self, spec: &ReplaySpec) -> Result<bool> {
        let stream = self.stream.as_mut().expect("an opened source");
        let offer = match stream.message().await {
            Ok(Some(api::StreamMessage {
                kind: Some(Kind::Handoff(offer)),
            })) => offer,
            other => {
                self.ahead = Some(other);
                return Ok(true);
            }
        };
        let connected =
            tokio::task::spawn_blocking(move || Handoff::connect(&offer).map(|h| (h, offer)))
                .await
                .map_err(|e| anyhow::anyhow!("receiving the segment files failed: {e}"))?;
        match connected {
            Ok((handoff, offer)) => {
                self.handoff = Some((handoff, Bounds::new(spec, offer.upto_sequence)));
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// The capture's description from its daemon's list (names of interfaces, filter,
    /// aliases, counters); `None` if the daemon could not say.
    pub async fn info(&self, targets: &Targets) -> Option<CaptureInfo> {
        let mut client = targets.connect(&self.endpoint).await.ok()?;
        let list = client.list(api::ListRequest {}).await.ok()?.into_inner();
        let capture = list
            .captures
            .into_iter()
            .find(|c| c.id == self.header.capture_id)?;
        CaptureInfo::try_from(capture).ok()
    }

    /// The daemon's "name X.Y.Z"; `None` if it could not say.
    pub async fn daemon(&self, targets: &Targets) -> Option<String> {
        let mut client = targets.connect(&self.endpoint).await.ok()?;
        let v = client
            .version(api::VersionRequest {})
            .await
            .ok()?
            .into_inner();
        Some(format!("{} {}", v.name, v.version))
    }

    /// Starts reading the stream into a queue; `woken` is told after every event.
    pub fn spawn(&mut self, woken: Arc<Notify>) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut stream = self.stream.take().expect("a source is read once");
        let endpoint = self.endpoint.clone();
        if let Some((handoff, bounds)) = self.handoff.take() {
            read_handed_over(handoff, bounds, stream, endpoint, tx, woken);
            return rx;
        }
        let mut ahead = self.ahead.take();
        tokio::spawn(async move {
            loop {
                let next = match ahead.take() {
                    Some(m) => m,
                    None => stream.message().await,
                };
                let event = match next {
                    Ok(Some(m)) => match m.kind {
                        Some(Kind::Records(b)) => Event::Records(Batch {
                            records: b.records,
                            resolution: Resolution::nano_if(b.nanoseconds),
                            count: b.count,
                            arrived: Instant::now(),
                        }),
                        Some(Kind::Notice(n)) => Event::Notice(n),
                        // Only sent to clients that do not ask for raw records.
                        Some(Kind::Packets(_)) => Event::End(Some(
                            "pcapd sent packets as a PacketBatch although this pcap asked for \
                             savefile records; it cannot write them (compare `pcap version` \
                             with the daemon's)"
                                .to_owned(),
                        )),
                        // A repeated header, an offer not taken up (it runs out), or a
                        // kind newer than this pcap.
                        Some(Kind::Header(_) | Kind::Handoff(_)) | None => continue,
                    },
                    Ok(None) => Event::End(None),
                    Err(status) => Event::End(Some(status_error(&endpoint)(status).to_string())),
                };
                let last = matches!(event, Event::End(_));
                if tx.send(event).await.is_err() {
                    return;
                }
                woken.notify_one();
                if last {
                    return;
                }
            }
        });
        rx
    }
}

/// Reads the segment files `handoff` brings on a thread of its own, into `tx` as a
/// stream's batches would come. When the files end too soon, the daemon's reason is on
/// `stream`.
fn read_handed_over(
    handoff: Handoff,
    bounds: Bounds,
    mut stream: Streaming<api::StreamMessage>,
    endpoint: Endpoint,
    tx: mpsc::Sender<Event>,
    woken: Arc<Notify>,
) {
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let read = handoff.read(bounds, |batch| {
            let sent = tx.blocking_send(Event::Records(batch)).is_ok();
            woken.notify_one();
            sent
        });
        let end = match read {
            Ok(()) => Event::End(None),
            Err(e) => {
                // The daemon says why it stopped, if it did; the local error otherwise.
                let why = rt.block_on(async {
                    let said = tokio::time::timeout(REASON_WITHIN, stream.message()).await;
                    match said {
                        Ok(Err(status)) => Some(status_error(&endpoint)(status).to_string()),
                        _ => None,
                    }
                });
                Event::End(Some(why.unwrap_or_else(|| format!("{e:#}"))))
            }
        };
        let _ = tx.blocking_send(end);
        woken.notify_one();
    });
}
