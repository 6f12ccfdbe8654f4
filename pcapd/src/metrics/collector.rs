//! What a scrape shows: every capture's counters and state, its readers, and the daemon's
//! uptime and version, read from the registry at scrape time.

use std::sync::Arc;
use std::time::Instant;

use pcap_core::domain::{CaptureInfo, State};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::TypedMetric;
use prometheus_client::registry::Unit;

use crate::registry::{ReaderKind, Registry};

/// Every state a capture can be in, each reported 0 or 1.
const STATES: [State; 6] = [
    State::Pending,
    State::Active,
    State::Retrying,
    State::Paused,
    State::Finished,
    State::Failed,
];

/// Reads the registry on each scrape.
pub struct PcapdCollector {
    registry: Arc<Registry>,
    started: Instant,
}

impl std::fmt::Debug for PcapdCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapdCollector")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl PcapdCollector {
    /// A collector of `registry`'s captures, counting uptime from `started`.
    pub fn new(registry: Arc<Registry>, started: Instant) -> Self {
        PcapdCollector { registry, started }
    }
}

/// Labels of a capture's samples.
type CaptureLabels = [(&'static str, String); 2];

fn capture_labels(c: &CaptureInfo) -> CaptureLabels {
    let alias = c.aliases.first().map(|a| a.to_string()).unwrap_or_default();
    [("id", c.id.to_string()), ("alias", alias)]
}

/// One family: a descriptor, then one sample per capture.
fn family<M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    captures: &[(CaptureLabels, CaptureInfo)],
    value: impl Fn(&CaptureInfo) -> M,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, unit, M::TYPE)?;
    for (labels, c) in captures {
        value(c).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for PcapdCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let captures: Vec<(CaptureLabels, CaptureInfo)> = self
            .registry
            .list()
            .into_iter()
            .map(|c| (capture_labels(&c), c))
            .collect();
        self.registry.forget_readers_of_deleted();
        let e = &mut encoder;
        let counter = |v: u64| ConstCounter::new(v);

        family(
            e,
            "pcapd_capture_received_packets",
            "Packets libpcap delivered to the capture.",
            None,
            &captures,
            |c| counter(c.counters.received),
        )?;
        family(
            e,
            "pcapd_capture_spooled_packets",
            "Packets written to the capture's spool.",
            None,
            &captures,
            |c| counter(c.counters.spooled_packets),
        )?;
        family(
            e,
            "pcapd_capture_spooled",
            "Bytes of packet records written to the capture's spool.",
            Some(&Unit::Bytes),
            &captures,
            |c| counter(c.counters.spooled_bytes),
        )?;
        family(
            e,
            "pcapd_capture_kernel_dropped_packets",
            "Packets the kernel dropped because the capture's buffer was full.",
            None,
            &captures,
            |c| counter(c.counters.dropped_kernel),
        )?;
        family(
            e,
            "pcapd_capture_interface_dropped_packets",
            "Packets the interface or its driver dropped.",
            None,
            &captures,
            |c| counter(c.counters.dropped_interface),
        )?;
        family(
            e,
            "pcapd_capture_expired_packets",
            "Packets deleted from the spool by retention (size, age, free-space floor).",
            None,
            &captures,
            |c| counter(c.counters.expired_packets),
        )?;
        family(
            e,
            "pcapd_capture_deferred_closes",
            "Times a full segment was kept open because the disk had not caught up with \
             closing the ones before it.",
            None,
            &captures,
            |c| counter(c.counters.deferred_closes),
        )?;
        family(
            e,
            "pcapd_capture_ring",
            "Bytes of kernel ring buffer the capture reads from now (0 when not running).",
            Some(&Unit::Bytes),
            &captures,
            |c| ConstGauge::new(c.counters.ring_bytes),
        )?;
        family(
            e,
            "pcapd_capture_ring_resizes",
            "Times the capture moved to a bigger or smaller kernel ring.",
            None,
            &captures,
            |c| counter(c.counters.ring_resizes),
        )?;
        family(
            e,
            "pcapd_capture_spool",
            "Bytes the capture's spool segments take on disk.",
            Some(&Unit::Bytes),
            &captures,
            |c| ConstGauge::new(c.counters.spool_bytes),
        )?;
        family(
            e,
            "pcapd_capture_spool_segments",
            "Segment files in the capture's spool.",
            None,
            &captures,
            |c| ConstGauge::new(u64::from(c.counters.spool_segments)),
        )?;

        let mut states = e.encode_descriptor(
            "pcapd_capture_state",
            "The capture's state: 1 for the state it is in, 0 for the others.",
            None,
            ConstGauge::<u64>::TYPE,
        )?;
        for ([id, alias], c) in &captures {
            for state in STATES {
                let labels = [id.clone(), alias.clone(), ("state", state.name().into())];
                ConstGauge::new(u64::from(c.state == state))
                    .encode(states.encode_family(&labels)?)?;
            }
        }

        let readers: Vec<_> = captures
            .iter()
            .flat_map(|([id, alias], c)| {
                ReaderKind::ALL.map(|kind| {
                    let labels = [id.clone(), alias.clone(), ("kind", kind.name().into())];
                    (labels, self.registry.reader_stats(c.id, kind))
                })
            })
            .collect();
        let mut connected = e.encode_descriptor(
            "pcapd_capture_readers",
            "Replay, Listen and Decode streams reading the capture now.",
            None,
            ConstGauge::<u64>::TYPE,
        )?;
        for (labels, stats) in &readers {
            ConstGauge::new(stats.connected).encode(connected.encode_family(labels)?)?;
        }
        let mut skipped = e.encode_descriptor(
            "pcapd_capture_reader_skipped_packets",
            "Packets skipped for Replay --live, Listen and Decode --live readers that read too slowly.",
            None,
            ConstCounter::<u64>::TYPE,
        )?;
        for (labels, stats) in &readers {
            counter(stats.skipped).encode(skipped.encode_family(labels)?)?;
        }

        let (segments_skipped, indexes_rebuilt) = crate::segment_index::counters();
        counter(segments_skipped).encode(e.encode_descriptor(
            "pcapd_replay_skipped_segments",
            "Spool segments Replay and Decode left unread because their index showed no \
             packet could pass the filter.",
            None,
            ConstCounter::<u64>::TYPE,
        )?)?;
        counter(indexes_rebuilt).encode(e.encode_descriptor(
            "pcapd_replay_rebuilt_segment_indexes",
            "Segment indexes rebuilt from their segment by a filtered replay (missing or \
             damaged ones).",
            None,
            ConstCounter::<u64>::TYPE,
        )?)?;

        let (handoffs, handed_files) = crate::readout::handoff::counters();
        counter(handoffs).encode(e.encode_descriptor(
            "pcapd_replay_handoffs",
            "Replays of local clients served by handing the spool's segment files over \
             rather than streaming their records.",
            None,
            ConstCounter::<u64>::TYPE,
        )?)?;
        counter(handed_files).encode(e.encode_descriptor(
            "pcapd_replay_handed_over_segments",
            "Segment files handed over to local clients' replays.",
            None,
            ConstCounter::<u64>::TYPE,
        )?)?;

        counter(crate::spool::disk::write_waits()).encode(e.encode_descriptor(
            "pcapd_spool_write_waits",
            "Times a capture thread waited for its spool's writing thread: the disk had \
             fallen 8 MiB of records behind (packets may then wait in the kernel's ring).",
            None,
            ConstCounter::<u64>::TYPE,
        )?)?;

        let uptime = e.encode_descriptor(
            "pcapd_uptime",
            "Time since pcapd started.",
            Some(&Unit::Seconds),
            ConstGauge::<f64>::TYPE,
        )?;
        ConstGauge::new(self.started.elapsed().as_secs_f64()).encode(uptime)?;
        let build = Info::new([("version", env!("CARGO_PKG_VERSION"))]);
        build.encode(e.encode_descriptor(
            "pcapd_build",
            "The version of pcapd running.",
            None,
            build.metric_type(),
        )?)?;
        Ok(())
    }
}
