//! The one feeding loop of a decoder, for the `Decode` call and for the captures decoded
//! while capturing: packets, gaps and state changes come in as [`readout`] items, roundtrips
//! go out in batches. It runs on a thread of its own (decoding is CPU work): it waits for
//! input with a timeout so that, reading live, the decoder's clock moves on while no
//! packets come and timed-out requests are reported while waiting.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use pcap_core::domain::State;
use pcap_decode::{DecodeStats, Decoder, Packet, Roundtrip};
use tokio::runtime::Handle;

use crate::readout::{Chunk, Header, Item, Items};
use crate::Error;

/// Most roundtrips sent in one batch; fewer when the input pauses.
pub const BATCH: usize = 256;
/// How long a live decoder waits for packets before moving its clock on.
pub const TICK: Duration = Duration::from_secs(1);

/// What the loop reads next.
#[derive(Debug)]
pub enum Input {
    Item(Item),
    /// Nothing came within the wait asked for.
    Idle,
    /// No more input: the stream ended, or the loop was asked to stop.
    End,
    /// Reading failed (the spool could not be read).
    Failed(Error),
}

/// What the loop hands on, in order.
#[derive(Debug)]
pub enum Output {
    Header(Header),
    Roundtrips(Vec<Roundtrip>),
    /// Packets the reader skipped (the flows they hit are marked incomplete).
    Gap(u64),
    State(State, String),
    Failed(Error),
}

/// Where the loop's output goes.
pub trait Sink {
    /// Takes one output; false when nobody wants more (a client that left).
    fn send(&mut self, out: Output) -> bool;

    /// The decoder's counters, after each input.
    fn progress(&mut self, _stats: &DecodeStats) {}
}

/// How the decoder's clock moves while no packets come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Only with packets (a spool read to its end, then `finish`).
    Packets,
    /// Also with wall time: after [`TICK`] without input, the clock is the last packet's
    /// time plus the time waited since it came. Reading the spool the items keep coming,
    /// so this never runs ahead of the packets still to come; reading live it is now.
    Live,
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The input ended: every open roundtrip was reported (`finish`).
    Input,
    /// The sink wanted no more.
    Left,
    /// The input failed; the sink was told.
    Failed,
}

/// Runs `decoder` over what `next` returns until the input ends or `sink` leaves.
/// `next(wait)` waits at most `wait` for an item.
pub fn run(
    decoder: &mut Decoder,
    mut next: impl FnMut(Duration) -> Input,
    sink: &mut impl Sink,
    clock: Clock,
) -> Ended {
    let mut pending: Vec<Roundtrip> = Vec::new();
    let mut link_type = 0;
    // The latest packet time seen, and when it came.
    let mut last: Option<(i64, Instant)> = None;
    loop {
        let wait = if pending.is_empty() {
            TICK
        } else {
            Duration::ZERO
        };
        match next(wait) {
            Input::Item(Item::Header(h)) => {
                link_type = h.link_type;
                if !sink.send(Output::Header(h)) {
                    return Ended::Left;
                }
            }
            Input::Item(Item::Chunk(Chunk::Packets(packets))) => {
                for p in &packets {
                    decoder.push(
                        &Packet {
                            link_type,
                            ts_ns: p.ts_ns,
                            data: &p.data,
                            orig_len: p.origlen,
                            seq: p.seq,
                        },
                        &mut pending,
                    );
                    if last.is_none_or(|(ts, _)| p.ts_ns >= ts) {
                        last = Some((p.ts_ns, Instant::now()));
                    }
                }
            }
            // Only asked for as packets; records would mean a change in readout.
            Input::Item(Item::Chunk(Chunk::Records { .. })) => {
                tracing::error!("a decoder was sent savefile records instead of packets");
            }
            // Never asked for by a decoder.
            Input::Item(Item::Handoff(_)) => {
                tracing::error!("a decoder was offered segment files instead of packets");
            }
            Input::Item(Item::Gap(dropped)) => {
                let ts = last.map_or(0, |(ts, _)| ts);
                decoder.gap(dropped, ts, &mut pending);
                if !flush(&mut pending, sink, 0) || !sink.send(Output::Gap(dropped)) {
                    return Ended::Left;
                }
            }
            Input::Item(Item::State(state, reason)) => {
                if !flush(&mut pending, sink, 0) || !sink.send(Output::State(state, reason)) {
                    return Ended::Left;
                }
            }
            Input::Idle => {
                if wait == TICK && clock == Clock::Live {
                    if let Some((ts, at)) = last {
                        let waited = i64::try_from(at.elapsed().as_nanos()).unwrap_or(i64::MAX);
                        decoder.advance(ts.saturating_add(waited), &mut pending);
                    }
                }
                if !flush(&mut pending, sink, 0) {
                    return Ended::Left;
                }
            }
            Input::End => break,
            Input::Failed(e) => {
                let _ = flush(&mut pending, sink, 0) && sink.send(Output::Failed(e));
                return Ended::Failed;
            }
        }
        sink.progress(&decoder.stats());
        if !flush(&mut pending, sink, BATCH) {
            return Ended::Left;
        }
    }
    decoder.finish(&mut pending);
    sink.progress(&decoder.stats());
    if !flush(&mut pending, sink, 0) {
        return Ended::Left;
    }
    Ended::Input
}

/// Sends pending roundtrips in batches of [`BATCH`], once at least `min` (0: all) wait.
fn flush(pending: &mut Vec<Roundtrip>, sink: &mut impl Sink, min: usize) -> bool {
    while !pending.is_empty() && pending.len() >= min {
        let rest = pending.split_off(pending.len().min(BATCH));
        let batch = std::mem::replace(pending, rest);
        if !sink.send(Output::Roundtrips(batch)) {
            return false;
        }
    }
    true
}

// === impl ItemSource ===

/// The items of a readout stream, read from a decoding thread: [`ItemSource::next`] waits
/// for the next one, at most a while, or until `stop` resolves.
pub struct ItemSource {
    items: Items,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    runtime: Handle,
}

impl ItemSource {
    /// Reads `items` until `stop` resolves, waiting on `runtime`'s timers.
    pub fn new(
        items: Items,
        stop: impl Future<Output = ()> + Send + 'static,
        runtime: Handle,
    ) -> Self {
        ItemSource {
            items,
            stop: Box::pin(stop),
            runtime,
        }
    }

    /// The next item, `Idle` after `wait` without one, `End` at the end or once stopped.
    /// Call from a thread outside the runtime.
    pub fn next(&mut self, wait: Duration) -> Input {
        let (items, stop) = (&mut self.items, &mut self.stop);
        self.runtime.block_on(async {
            tokio::select! {
                biased;
                () = stop => Input::End,
                item = items.recv() => match item {
                    Some(Ok(item)) => Input::Item(item),
                    Some(Err(e)) => Input::Failed(e),
                    None => Input::End,
                },
                () = tokio::time::sleep(wait) => Input::Idle,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::Bytes;
    use pcap_decode::{DecodeConfig, Proto};

    use super::*;
    use crate::readout;

    #[derive(Default)]
    struct Collect {
        out: Vec<Output>,
        progress: Vec<DecodeStats>,
        leave_after: Option<usize>,
    }

    impl Sink for Collect {
        fn send(&mut self, out: Output) -> bool {
            self.out.push(out);
            self.leave_after.is_none_or(|n| self.out.len() < n)
        }
        fn progress(&mut self, stats: &DecodeStats) {
            self.progress.push(*stats);
        }
    }

    fn packets(seqs: std::ops::RangeInclusive<u64>) -> Item {
        Item::Chunk(Chunk::Packets(
            seqs.map(|seq| readout::Packet {
                seq,
                ts_ns: seq as i64 * 1000,
                caplen: 1,
                origlen: 1,
                data: Bytes::from_static(b"x"),
            })
            .collect(),
        ))
    }

    fn header() -> Item {
        Item::Header(Header {
            capture_id: 1,
            link_type: 1,
            snaplen: 100,
        })
    }

    fn script(items: Vec<Input>) -> impl FnMut(Duration) -> Input {
        let mut items: VecDeque<Input> = items.into();
        move |_| items.pop_front().unwrap_or(Input::End)
    }

    fn roundtrips(n: usize) -> Vec<Roundtrip> {
        (0..n)
            .map(|i| Roundtrip {
                ts_ns: i as i64,
                duration_ns: 0,
                proto: Proto::Dns,
                client: "127.0.0.1:1".parse().unwrap(),
                server: "127.0.0.1:53".parse().unwrap(),
                flow: 1,
                packets: [1, 1],
                complete: true,
                notes: vec![],
                http: None,
                dns: None,
                http2: None,
                grpc: None,
                tls: None,
            })
            .collect()
    }

    #[test]
    fn packets_reach_the_decoder_and_notices_pass_in_order() {
        let mut decoder = Decoder::new(DecodeConfig::default());
        let mut sink = Collect::default();
        let ended = run(
            &mut decoder,
            script(vec![
                Input::Item(header()),
                Input::Item(packets(1..=3)),
                Input::Item(Item::Gap(5)),
                Input::Item(packets(9..=10)),
                Input::Item(Item::State(State::Paused, String::new())),
            ]),
            &mut sink,
            Clock::Packets,
        );
        assert_eq!(ended, Ended::Input);
        assert_eq!(decoder.stats().packets, 5);
        assert!(matches!(sink.out[0], Output::Header(h) if h.link_type == 1));
        assert!(matches!(sink.out[1], Output::Gap(5)));
        assert!(matches!(sink.out[2], Output::State(State::Paused, _)));
        assert_eq!(sink.progress.last().unwrap().packets, 5);
    }

    #[test]
    fn a_sink_that_leaves_ends_the_loop() {
        let mut decoder = Decoder::new(DecodeConfig::default());
        let mut sink = Collect {
            leave_after: Some(1),
            ..Default::default()
        };
        let ended = run(
            &mut decoder,
            script(vec![Input::Item(header()), Input::Item(packets(1..=3))]),
            &mut sink,
            Clock::Packets,
        );
        assert_eq!(ended, Ended::Left);
        assert_eq!(decoder.stats().packets, 0);
    }

    #[test]
    fn a_failed_read_is_passed_on() {
        let mut decoder = Decoder::new(DecodeConfig::default());
        let mut sink = Collect::default();
        let ended = run(
            &mut decoder,
            script(vec![Input::Failed(Error::Internal("disk".into()))]),
            &mut sink,
            Clock::Packets,
        );
        assert_eq!(ended, Ended::Failed);
        assert!(matches!(&sink.out[0], Output::Failed(Error::Internal(m)) if m == "disk"));
    }

    #[test]
    fn roundtrips_go_in_batches_of_at_most_batch() {
        let mut sink = Collect::default();
        let mut pending = roundtrips(2 * BATCH + 3);
        assert!(flush(&mut pending, &mut sink, BATCH));
        assert_eq!(pending.len(), 3, "a short batch waits for more");
        assert!(flush(&mut pending, &mut sink, 0));
        let sizes: Vec<usize> = sink
            .out
            .iter()
            .map(|o| match o {
                Output::Roundtrips(b) => b.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, vec![BATCH, BATCH, 3]);
        assert_eq!(
            match &sink.out[2] {
                Output::Roundtrips(b) => b[2].ts_ns,
                _ => -1,
            },
            (2 * BATCH + 2) as i64,
            "in order"
        );
    }

    #[test]
    fn an_item_source_reads_until_stopped_and_says_when_idle() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let (tx, items) = tokio::sync::mpsc::channel(4);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut source = ItemSource::new(
            items,
            async move {
                let _ = stop_rx.await;
            },
            runtime.handle().clone(),
        );
        tx.try_send(Ok(Item::Gap(3))).unwrap();
        assert!(matches!(
            source.next(Duration::ZERO),
            Input::Item(Item::Gap(3))
        ));
        assert!(matches!(
            source.next(Duration::from_millis(10)),
            Input::Idle
        ));
        drop(stop_tx);
        tx.try_send(Ok(Item::Gap(4))).unwrap();
        assert!(matches!(source.next(Duration::ZERO), Input::End));
    }
}
