//! Moving a `replay` or `listen`'s packets from the sources' queues into the sink: one
//! source's batches whole, several merged packet by packet; notices told on the way.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Result};
use pcap_core::api::v1::{self as api, notice};
use tokio::sync::{mpsc, Notify};

use super::notices::Notices;
use crate::merge::{Merge, Step};
use crate::output::Flow;
use crate::progress::Progress;
use crate::sink::Sink;
use crate::sources::Event;

/// Moves packets from the sources' queues into the sink.
pub(super) struct Pump {
    pub(super) sink: Sink,
    pub(super) progress: Progress,
    pub(super) notices: Vec<Notices>,
    /// The captures as the user named them.
    pub(super) labels: Vec<String>,
    /// Whether sources may end while others go on (live streams).
    pub(super) live: bool,
    /// Packets still to write, when limited.
    pub(super) left: Option<u64>,
}

impl Pump {
    /// One source: its batches go out whole, in the order they came.
    pub(super) async fn one(&mut self, mut queue: mpsc::Receiver<Event>) -> Result<Flow> {
        let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
        loop {
            let event = tokio::select! {
                e = queue.recv() => e,
                _ = &mut interrupted => return Ok(Flow::Continue),
            };
            match event {
                Some(Event::Records(b)) => {
                    let (n, bytes, flow) = self.sink.batch(0, &b, self.left)?;
                    if flow == Flow::ReaderGone || self.sink.flush()? == Flow::ReaderGone {
                        return Ok(Flow::ReaderGone);
                    }
                    self.progress.add(n, bytes);
                    if self.count(n) {
                        return Ok(Flow::Continue);
                    }
                }
                Some(Event::Notice(n)) => self.notice(0, n),
                Some(Event::End(None)) | None => return Ok(Flow::Continue),
                Some(Event::End(Some(e))) => {
                    self.sink.flush()?;
                    return Err(anyhow!(e));
                }
            }
        }
    }

    /// Several sources, merged packet by packet.
    pub(super) async fn merge(
        &mut self,
        mut queues: Vec<mpsc::Receiver<Event>>,
        woken: Arc<Notify>,
        window: Option<std::time::Duration>,
    ) -> Result<Flow> {
        let mut merge = Merge::new(queues.len(), window);
        let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
        loop {
            // Take what the starving lanes have, without waiting.
            let starving: Vec<usize> = merge.starving().collect();
            for lane in starving {
                while let Ok(event) = queues[lane].try_recv() {
                    match event {
                        Event::Records(b) => {
                            merge.feed(lane, b);
                            if merge.starving().all(|l| l != lane) {
                                break;
                            }
                        }
                        Event::Notice(n) => self.notice(lane, n),
                        Event::End(why) => {
                            self.end(lane, why);
                            merge.end(lane);
                            break;
                        }
                    }
                }
            }
            match merge.step(Instant::now()) {
                Step::Write(p) => {
                    let (bytes, flow) = self.sink.packet(&p)?;
                    if flow == Flow::ReaderGone {
                        return Ok(flow);
                    }
                    self.progress.add(1, bytes);
                    if self.count(1) {
                        return self.sink.flush();
                    }
                }
                Step::Done => return self.sink.flush(),
                Step::Wait(until) => {
                    if self.sink.flush()? == Flow::ReaderGone {
                        return Ok(Flow::ReaderGone);
                    }
                    let due = until.map(tokio::time::Instant::from_std);
                    tokio::select! {
                        _ = woken.notified() => {}
                        _ = tokio::time::sleep_until(due.unwrap_or_else(far)), if due.is_some() => {}
                        _ = &mut interrupted => return Ok(Flow::Continue),
                    }
                }
            }
        }
    }

    /// Counts `n` packets written; true once the limit is reached.
    fn count(&mut self, n: u64) -> bool {
        match self.left.as_mut() {
            Some(left) => {
                *left = left.saturating_sub(n);
                *left == 0
            }
            None => false,
        }
    }

    fn notice(&mut self, lane: usize, n: api::Notice) {
        if let Some(notice::Kind::Gap(gap)) = &n.kind {
            self.sink.gap(lane, gap.dropped);
        }
        self.progress.interrupt();
        match self.labels.len() {
            1 => self.notices[lane].tell(n),
            _ => {
                let prefix = format!("{}: ", self.labels[lane]);
                self.notices[lane].tell_with(&prefix, n);
            }
        }
    }

    /// A source of a merge ended: the others go on. An error is told; so is the end of a
    /// live stream, which the others outlive.
    fn end(&mut self, lane: usize, why: Option<String>) {
        let label = &self.labels[lane];
        let why = match why {
            Some(e) => {
                self.progress.interrupt();
                eprintln!("pcap: {label}: {e}; the other captures go on");
                e
            }
            None if self.live => "its stream ended (the capture stopped)".to_owned(),
            None => return,
        };
        self.sink.ended(lane, &why);
    }
}

/// A deadline that is never reached (for a timer that is not armed).
fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365)
}
