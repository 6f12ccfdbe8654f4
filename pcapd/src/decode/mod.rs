//! Decoding roundtrips in the daemon: the `Decode` call ([`serve`]: a capture's spool, then
//! with `live` its new packets) and the captures decoded while capturing ([`live`], for
//! metrics). Both read packets through [`crate::readout`], as Replay and Listen do, and run
//! a [`pcap_decode::Decoder`] on a thread of their own through one feeding loop ([`feed`]).

pub mod feed;
pub mod live;
pub mod metrics;

use pcap_core::domain::{DecodeSpec, ReplaySpec};
use pcap_decode::{DecodeConfig, Decoder};
use tokio::sync::mpsc;

pub use feed::Output;
pub use live::LiveDecoder;
pub use metrics::{DecodeCollector, DecodeMetrics};

use crate::readout;
use crate::registry::ReplaySource;
use crate::{Error, Result};
use feed::{Clock, ItemSource, Sink};

/// Outputs buffered towards one client.
const CLIENT_QUEUE: usize = 8;

/// The receiving end of a `Decode` stream: a header, roundtrips and notices, in order; it
/// ends after an error or when the decoding is done.
pub type Outputs = mpsc::Receiver<Output>;

/// Decodes what `spec` asks for of `src`: its spool up to where it ended when the call
/// began, then with `live` the packets after it, on a thread of its own. The thread ends
/// soon after the receiver is dropped. `hold` is kept until it ends (a stream permit, the
/// reader's registration).
pub fn serve(src: ReplaySource, spec: &DecodeSpec, hold: impl Send + 'static) -> Result<Outputs> {
    let id = src.id;
    let replay = replay_spec(spec);
    let config = DecodeConfig {
        rules: spec.protocols.clone(),
        ..DecodeConfig::default()
    };
    let clock = if spec.live {
        Clock::Live
    } else {
        Clock::Packets
    };
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let client = tx.clone();
    let mut source = ItemSource::new(
        readout::replay(src, &replay, ()),
        async move { client.closed().await },
        tokio::runtime::Handle::current(),
    );
    std::thread::Builder::new()
        .name(format!("decode-{id}"))
        .spawn(move || {
            let _hold = hold;
            let mut decoder = Decoder::new(config);
            let mut sink = ClientSink(tx);
            let ended = feed::run(&mut decoder, |wait| source.next(wait), &mut sink, clock);
            let stats = decoder.stats();
            tracing::debug!(
                capture.id = id,
                ?ended,
                packets = stats.packets,
                roundtrips = stats.roundtrips,
                "decode stream ended"
            );
        })
        .map_err(|e| Error::Unavailable(format!("cannot start a decoding thread: {e}")))?;
    Ok(rx)
}

/// What a `Decode` call reads: a replay of the same packets, taken apart.
pub fn replay_spec(spec: &DecodeSpec) -> ReplaySpec {
    ReplaySpec {
        selector: spec.selector.clone(),
        live: spec.live,
        since_unix_ns: spec.since_unix_ns,
        until_unix_ns: spec.until_unix_ns,
        filter: spec.filter.clone(),
        raw_records: false,
        microseconds: false,
        segment_handoff: false,
    }
}

/// Hands a stream's output to its client, waiting while the client's queue is full.
struct ClientSink(mpsc::Sender<Output>);

impl Sink for ClientSink {
    fn send(&mut self, out: Output) -> bool {
        self.0.blocking_send(out).is_ok()
    }
}
