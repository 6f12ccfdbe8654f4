//! A capture decoded while it captures (`init --decode`): a live reader of its own, fed
//! like Listen from the capture's fan-out (the capture never waits for it; when it falls
//! behind it is told the gap and marks the flows it hits), decoding on a thread of its own
//! into the capture's metrics. It runs for as long as the capture's thread does: when the
//! thread ends, the fan-out closes, the decoder reports what is still open (`finish`) and
//! ends too.

use std::sync::Arc;
use std::time::Duration;

use pcap_core::domain::{ListenSpec, Selector};
use pcap_decode::ProtoRule;
use pcap_decode::{DecodeConfig, DecodeStats, Decoder};
use tokio::sync::{oneshot, Notify};

use super::feed::{self, Clock, ItemSource, Output, Sink};
use super::metrics::CaptureSeries;
use crate::capture::Controller;
use crate::readout::{self, Header};

/// The registry's handle on a capture's continuous decoder.
pub struct LiveDecoder {
    stop: Arc<Notify>,
    /// Closed when the decoder has ended.
    done: oneshot::Receiver<()>,
}

impl LiveDecoder {
    /// Subscribes to the running capture `controller` drives and decodes its packets by
    /// `rules` into `series`, from the next packet on. Answers once subscribed, so that a
    /// capture reported ACTIVE has every later packet decoded; `None` when the capture
    /// stopped meanwhile or its thread did not answer within `wait`.
    pub async fn start(
        header: Header,
        rules: Vec<ProtoRule>,
        controller: &Controller,
        series: Arc<CaptureSeries>,
        wait: Duration,
    ) -> Option<LiveDecoder> {
        let id = header.capture_id;
        let subscribed = controller.subscribe_request().ok()?;
        let (_, sub) = match tokio::time::timeout(wait, subscribed).await {
            Ok(Ok(sub)) => sub,
            // The capture stopped as the decoder began: nothing to decode.
            Ok(Err(_)) => return None,
            Err(_) => {
                tracing::warn!(
                    capture.id = id,
                    "the capture thread did not answer; not decoding this run"
                );
                return None;
            }
        };
        let spec = ListenSpec {
            selector: Selector::Id(id),
            count: None,
            raw_records: false,
        };
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let mut source = ItemSource::new(
            readout::listen(header, sub, &spec, ()),
            async move { stopped.notified().await },
            tokio::runtime::Handle::current(),
        );
        let (done_tx, done) = oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name(format!("decode-live-{id}"))
            .spawn(move || {
                let _done = done_tx;
                let mut decoder = Decoder::new(DecodeConfig {
                    rules,
                    ..DecodeConfig::default()
                });
                let mut sink = MetricsSink {
                    series,
                    last: DecodeStats::default(),
                };
                feed::run(
                    &mut decoder,
                    |wait| source.next(wait),
                    &mut sink,
                    Clock::Live,
                );
                tracing::info!(
                    capture.id = id,
                    packets = decoder.stats().packets,
                    "decoding ended"
                );
            });
        match spawned {
            Ok(_) => {
                tracing::info!(capture.id = id, "decoding while capturing");
                Some(LiveDecoder { stop, done })
            }
            Err(e) => {
                tracing::error!(capture.id = id, error = %e, "cannot start a decoding thread");
                None
            }
        }
    }

    /// Whether the decoder has ended (its capture's thread ended, or it could not start).
    pub fn has_ended(&mut self) -> bool {
        matches!(
            self.done.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        )
    }

    /// Waits for the decoder to end once its capture's thread has: it reads what was
    /// queued for it, reports what is still open, and ends. After `grace` it is told to
    /// stop without reading the rest.
    pub async fn ended(mut self, grace: Duration) {
        if tokio::time::timeout(grace, &mut self.done).await.is_err() {
            self.stop.notify_one();
            let _ = self.done.await;
        }
    }
}

/// Counts what a continuous decoder reports into its capture's metrics.
struct MetricsSink {
    series: Arc<CaptureSeries>,
    /// The decoder's counters when last seen.
    last: DecodeStats,
}

impl Sink for MetricsSink {
    fn send(&mut self, out: Output) -> bool {
        match out {
            Output::Roundtrips(batch) => self.series.record(&batch),
            Output::Gap(dropped) => self.series.gap(dropped),
            Output::Failed(e) => tracing::error!(error = %e, "decoding while capturing failed"),
            Output::Header(_) | Output::State(..) => {}
        }
        true
    }

    fn progress(&mut self, stats: &DecodeStats) {
        self.series.decoder_progress(&self.last, stats);
        self.last = *stats;
    }
}
