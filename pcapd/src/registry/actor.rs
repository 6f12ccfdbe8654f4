//! The owner of one capture: a task that alone changes the capture's record, starts and
//! joins its thread, and writes it to the database. Everything that changes a capture
//! (start, stop, delete, a reloaded configuration, its thread's reports, the daemon
//! stopping) arrives in this task's mailbox and is done one at a time, so operations on
//! one capture are serialised while other captures' owners go on by themselves. Blocking
//! work (the spool check, joining the thread, the database) runs on the blocking pool;
//! the task holds no lock while it waits for it.
//!
//! Readers never wait for this task: it publishes the capture's record in a [`View`]
//! after every change, and while the capture runs, the thread's [`Controller`] too.

use std::sync::Arc;
use std::time::Duration;

use pcap_core::domain::{CaptureInfo, State, StopConditions};
use tokio::sync::{mpsc, oneshot};

use super::view::{label, View};
use crate::capture::{CaptureHandle, CaptureParams, Control, Event, RingPlan};
use crate::config::Config;
use crate::decode::DecodeMetrics;
use crate::decode::{metrics::capture_label, LiveDecoder};
use crate::readout::Header;
use crate::spool::{self, catalog};
use crate::store::Store;
use crate::{Error, Result};

/// How long a start waits for the thread to open the interface before answering anyway.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a running capture's counters are saved.
const PERSIST_EVERY: Duration = Duration::from_secs(10);
/// How long a capture's decoder may take to read what was queued for it once the capture
/// thread has ended, before it is stopped.
const DECODER_GRACE: Duration = Duration::from_secs(5);

/// What a capture's owner is asked to do. Each carries where to send the answer.
pub enum Command {
    /// Write the record for the first time (a new capture).
    Create(oneshot::Sender<Result<()>>),
    /// The record changed outside (aliases added by `init`): write it.
    Persist(oneshot::Sender<Result<()>>),
    /// Start the thread unless it runs, taking new stop conditions if given.
    Start {
        stop: Option<StopConditions>,
        reply: oneshot::Sender<Result<CaptureInfo>>,
    },
    /// Stop the thread and record PAUSED.
    Stop(oneshot::Sender<Result<CaptureInfo>>),
    /// Stop the thread, remove the spool and the record, and end this task.
    Delete(oneshot::Sender<Result<CaptureInfo>>),
    /// A new configuration: capture with its exclusion and retention from now on.
    Reconfigure(Arc<Config>, oneshot::Sender<()>),
    /// The daemon is exiting: stop the thread, keep the state, end this task.
    Shutdown(oneshot::Sender<()>),
}

/// What every owner shares: the database, the data directory, the configuration in force.
pub struct Shared {
    pub store: Arc<Store>,
    pub data_dir: std::path::PathBuf,
    pub config: crate::config::Current,
    /// Distinguishes runs of captures, so that late reports of an ended run are ignored.
    pub generations: std::sync::atomic::AtomicU64,
    /// The metrics of the captures decoded while capturing.
    pub decode_metrics: Arc<DecodeMetrics>,
    /// Kernel ring memory the running captures share (`capture_memory`).
    pub ring_budget: Arc<crate::capture::ring::RingBudget>,
}

/// The registry's handle on one capture's owner.
#[derive(Clone)]
pub struct CaptureRef {
    pub view: Arc<View>,
    mailbox: mpsc::UnboundedSender<Command>,
}

impl CaptureRef {
    /// Starts the owner of a capture whose record is `info`.
    pub fn spawn(info: CaptureInfo, shared: Arc<Shared>) -> CaptureRef {
        let view = Arc::new(View::new(info.clone()));
        let (mailbox, commands) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let owner = Owner {
            info,
            run: None,
            decoder: None,
            view: view.clone(),
            shared,
            events_tx,
        };
        tokio::spawn(owner.serve(commands, events));
        CaptureRef { view, mailbox }
    }

    /// Whether its owner has ended: the capture was deleted (its entry in the registry
    /// goes a moment later).
    pub fn is_gone(&self) -> bool {
        self.mailbox.is_closed()
    }

    /// Sends a command without waiting; false if the owner has ended (deleted).
    pub fn send(&self, cmd: Command) -> bool {
        self.mailbox.send(cmd).is_ok()
    }

    /// Sends a command and waits for its answer. A capture deleted meanwhile is NOT_FOUND.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let gone = || {
            let label = self.view.with(label);
            Error::NotFound(format!(
                "no {label} any more: it was deleted meanwhile; `pcap list` shows the captures"
            ))
        };
        self.mailbox.send(make(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

/// The task that owns one capture.
struct Owner {
    info: CaptureInfo,
    run: Option<CaptureHandle>,
    /// Decodes the capture while it is ACTIVE, when it has decode rules.
    decoder: Option<LiveDecoder>,
    view: Arc<View>,
    shared: Arc<Shared>,
    /// Given to each run of the thread; its reports come back on `events`.
    events_tx: mpsc::UnboundedSender<Event>,
}

impl Owner {
    async fn serve(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        let mut persist = tokio::time::interval(PERSIST_EVERY);
        persist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                Some(ev) = events.recv() => self.on_event(ev).await,
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { return };
                    if self.on_command(cmd).await.is_break() {
                        return;
                    }
                }
                _ = persist.tick(), if self.run.is_some() => {
                    if let Err(e) = self.save().await {
                        tracing::error!(capture.id = self.info.id, error = %e, "saving counters");
                    }
                }
            }
        }
    }

    async fn on_command(&mut self, cmd: Command) -> std::ops::ControlFlow<()> {
        use std::ops::ControlFlow::{Break, Continue};
        match cmd {
            Command::Create(reply) => {
                let _ = reply.send(self.save().await);
            }
            Command::Persist(reply) => {
                self.info.aliases = self.view.with(|i| i.aliases.clone());
                let _ = reply.send(self.save().await);
            }
            Command::Start { stop, reply } => {
                let _ = reply.send(self.start(stop).await);
            }
            Command::Stop(reply) => {
                let r = self.halt(State::Paused).await;
                let _ = reply.send(r.map(|()| self.view.snapshot()));
            }
            Command::Delete(reply) => match self.delete().await {
                Ok(info) => {
                    let _ = reply.send(Ok(info));
                    return Break(());
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Reconfigure(config, reply) => {
                self.reconfigure(config).await;
                let _ = reply.send(());
            }
            Command::Shutdown(reply) => {
                let state = self.info.state;
                if let Err(e) = self.halt(state).await {
                    tracing::error!(capture.id = self.info.id, error = %e, "saving capture at exit");
                }
                let _ = reply.send(());
                return Break(());
            }
        }
        Continue(())
    }

    /// Starts the thread unless it runs; answers once it captures or knows it cannot.
    async fn start(&mut self, stop: Option<StopConditions>) -> Result<CaptureInfo> {
        if let Some(file) = &self.info.imported_from {
            return Err(Error::Precondition(format!(
                "{} was imported from {file}: it has no interface to capture on, so it \
                 cannot be started; `pcap init` defines a capture of an interface",
                label(&self.info)
            )));
        }
        if self.run.is_some() {
            if stop.is_some() {
                return Err(Error::Precondition(format!(
                    "{} is running; stop it first to give it new stop conditions",
                    label(&self.info)
                )));
            }
            return Ok(self.view.snapshot());
        }
        if let Some(stop) = stop {
            self.info.stop = stop;
        }
        let config = self.shared.config.get();
        let generation = self
            .shared
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (store, data_dir, info) = (
            self.shared.store.clone(),
            self.shared.data_dir.clone(),
            self.info.clone(),
        );
        let events = self.events_tx.clone();
        let ring_budget = self.shared.ring_budget.clone();
        let spawned = blocking(move || {
            let dir = spool::capture_dir(&data_dir, info.id);
            let closed = catalog::reconcile(&store, info.id, &dir)?.segments;
            let applied = config.applied_filter(&info.filter);
            let params = CaptureParams {
                id: info.id,
                generation,
                device: crate::capture::device::device_name(&info.target).to_owned(),
                netns: info.target.netns.clone(),
                anchor: info.anchor,
                netns_cookie: info.netns_cookie,
                filter: applied.clone(),
                snaplen: info.snaplen,
                promisc: info.promisc,
                ring: match config.capture_buffer_bytes {
                    Some(n) => RingPlan::Fixed(n),
                    None => {
                        ring_budget.set_total(config.capture_memory_bytes);
                        RingPlan::Shared(ring_budget)
                    }
                },
                share_after: config.shared_ring_after,
                all_interfaces: info.target.single_interface().is_none(),
                interfaces: info.target.interfaces.clone(),
                link_type: info.link_type,
                stop: info.stop,
                dir,
                store,
                policy: config.retention_for(&info.retention),
                closed,
            };
            let (handle, ready) = CaptureHandle::spawn(params, info.counters, events)?;
            Ok((handle, ready, applied))
        })
        .await?;
        let (handle, ready, applied) = spawned;
        self.info.applied_filter = applied;
        self.info.started_unix_ns = pcap_core::parse::unix_ns(std::time::SystemTime::now());
        self.info.reason.clear();
        self.view.lock().run = Some((handle.counters.clone(), handle.controller.clone()));
        self.run = Some(handle);
        let (state, reason) = match tokio::time::timeout(READY_TIMEOUT, ready).await {
            Ok(Ok(first)) => first,
            // The thread ended without a word: its exit report says why.
            Ok(Err(_)) => (
                State::Failed,
                "the capture thread ended before capturing".to_owned(),
            ),
            Err(_) => (
                State::Retrying,
                "opening the interface takes unusually long".to_owned(),
            ),
        };
        self.info.state = state;
        self.info.reason = reason;
        self.follow_with_decoder().await;
        self.save().await?;
        tracing::info!(capture.id = self.info.id, state = %state, "started");
        Ok(self.view.snapshot())
    }

    /// Stops the thread if it runs, keeps its final counters and records `state`
    /// (PAUSED for a user's stop; the state it had when the daemon exits, so that it
    /// resumes). A capture that does not run stays as it is, unless it was to resume.
    async fn halt(&mut self, state: State) -> Result<()> {
        if let Some(run) = self.run.take() {
            run.controller.request(match state {
                State::Paused => Control::Stop,
                _ => Control::Shutdown,
            });
            let counters = run.counters.clone();
            blocking(move || {
                run.join();
                Ok(())
            })
            .await?;
            self.decoder_ended().await;
            self.info.counters = counters.snapshot();
            self.view.lock().run = None;
            self.info.state = state;
            self.info.reason.clear();
        } else if self.info.state.is_running() {
            // Due to resume but could not start: a stop still pauses it.
            self.info.state = state;
        }
        self.save().await
    }

    async fn delete(&mut self) -> Result<CaptureInfo> {
        self.halt(State::Paused).await?;
        self.decoder_ended().await;
        self.shared.decode_metrics.remove(self.info.id);
        let (store, dir, id) = (
            self.shared.store.clone(),
            spool::capture_dir(&self.shared.data_dir, self.info.id),
            self.info.id,
        );
        blocking(move || {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&dir, e)),
            }
            store.delete_capture(id)
        })
        .await?;
        Ok(self.info.clone())
    }

    /// Applies a new configuration's exclusion and retention to the running thread.
    async fn reconfigure(&mut self, config: Arc<Config>) {
        let (filter, with) = (self.info.filter.clone(), config.clone());
        let applied = match blocking(move || Ok(with.applied_filter(&filter))).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(capture.id = self.info.id, error = %e, "reconfiguring");
                return;
            }
        };
        let Some(run) = &self.run else {
            // Computed again at the next start; shown meanwhile as it would apply.
            self.info.applied_filter = applied;
            self.publish();
            return;
        };
        let (reply, answer) = oneshot::channel();
        run.controller.request(Control::Reconfigure {
            filter: applied.clone(),
            policy: config.retention_for(&self.info.retention),
            reply,
        });
        match answer.await {
            Ok(Ok(())) => {
                tracing::info!(capture.id = self.info.id, filter = %applied, "capturing with the new configuration");
                self.info.applied_filter = applied;
                if let Err(e) = self.save().await {
                    tracing::error!(capture.id = self.info.id, error = %e, "saving capture");
                }
            }
            Ok(Err(e)) => {
                tracing::error!(capture.id = self.info.id, error = %e, "the new filter was refused; capturing with the old one")
            }
            // The thread ended meanwhile; its exit report follows.
            Err(_) => {}
        }
    }

    /// A report from the capture thread; those of earlier runs are ignored.
    async fn on_event(&mut self, ev: Event) {
        let (generation, state, reason, exited) = match ev {
            Event::Opened {
                generation,
                interface_names,
                filter,
                ..
            } => {
                if self.run.as_ref().map(|r| r.generation) == Some(generation) {
                    self.info.interface_names.extend(interface_names);
                    self.info.applied_filter = filter;
                    if let Err(e) = self.save().await {
                        tracing::error!(capture.id = self.info.id, error = %e, "saving capture");
                    }
                }
                return;
            }
            Event::State {
                generation,
                state,
                reason,
                ..
            } => (generation, state, reason, false),
            Event::Exited {
                generation,
                state,
                reason,
                ..
            } => (generation, state, reason, true),
        };
        if self.run.as_ref().map(|r| r.generation) != Some(generation) {
            return;
        }
        if exited {
            let run = self.run.take().expect("checked above");
            let counters = run.counters.clone();
            let (store, dir, id) = (
                self.shared.store.clone(),
                spool::capture_dir(&self.shared.data_dir, self.info.id),
                self.info.id,
            );
            // A thread that failed may have left its segment open: repair and close it.
            let checked = blocking(move || {
                run.join();
                catalog::reconcile(&store, id, &dir)
            })
            .await;
            if let Err(e) = checked {
                tracing::error!(capture.id = id, error = %e, "checking the spool after the capture ended");
            }
            self.decoder_ended().await;
            self.info.counters = counters.snapshot();
            self.view.lock().run = None;
        }
        self.info.state = state;
        self.info.reason = reason;
        self.follow_with_decoder().await;
        if let Err(e) = self.save().await {
            tracing::error!(capture.id = self.info.id, error = %e, "saving capture state");
        }
    }

    /// Starts decoding the capture when it has decode rules and has become ACTIVE (first
    /// start, after RETRYING, on resuming at the daemon's start) unless a decoder follows
    /// it already. A decoder reads the thread's fan-out, so one lives as long as the
    /// thread's run. Called before the state is published, so that once a capture is
    /// listed ACTIVE every later packet is decoded.
    async fn follow_with_decoder(&mut self) {
        if self.decoder.as_mut().is_some_and(LiveDecoder::has_ended) {
            self.decoder = None;
        }
        if self.decoder.is_some() || self.info.decode.is_empty() || self.info.state != State::Active
        {
            return;
        }
        let Some(controller) = self.run.as_ref().map(|r| r.controller.clone()) else {
            return;
        };
        let header = Header {
            capture_id: self.info.id,
            link_type: self.info.link_type,
            snaplen: self.info.snaplen,
        };
        let series = self
            .shared
            .decode_metrics
            .series(self.info.id, capture_label(&self.info));
        let rules = self.info.decode.clone();
        self.decoder = LiveDecoder::start(header, rules, &controller, series, READY_TIMEOUT).await;
    }

    /// Once the capture's thread has ended: waits for its decoder to count what is left.
    async fn decoder_ended(&mut self) {
        if let Some(decoder) = self.decoder.take() {
            decoder.ended(DECODER_GRACE).await;
        }
    }

    /// Publishes the record and writes it to the database.
    async fn save(&mut self) -> Result<()> {
        self.publish();
        let info = self.view.snapshot();
        let store = self.shared.store.clone();
        blocking(move || store.put_capture(&info)).await
    }

    /// Makes the record visible to readers, keeping aliases the registry added meanwhile.
    fn publish(&mut self) {
        let mut p = self.view.lock();
        self.info.aliases = p.info.aliases.clone();
        p.info = self.info.clone();
    }
}

/// Runs blocking work on the blocking pool and waits for it.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a blocking task failed: {e}")))?
}
