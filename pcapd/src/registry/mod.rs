//! The registry: every capture, its state, and its running thread. One struct behind one
//! lock owns all of it and the database; capture threads report through a channel.
//! Methods block (file and database I/O, joining threads): call them off the async runtime.

mod ops;
mod readers;
mod streams;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use pcap_core::domain::{CaptureId, CaptureInfo, Selector};
use tokio::sync::mpsc;

use crate::capture::{CaptureHandle, CaptureParams, Control, Event};
use crate::config::Config;
use crate::spool::{self, catalog, retention::RetentionPolicy};
use crate::store::Store;
use crate::{Error, Result};

pub use readers::{ReaderGuard, ReaderKind, ReaderStats};
pub use streams::ReplaySource;

/// Name of the database file in the data directory.
const DB_FILE: &str = "registry.redb";

/// All captures known to the daemon.
pub struct Registry {
    inner: Mutex<Inner>,
    store: Arc<Store>,
    data_dir: PathBuf,
    config: RwLock<Config>,
    events: mpsc::UnboundedSender<Event>,
    /// The Replay and Listen streams being served, for metrics.
    readers: Arc<readers::Readers>,
}

struct Inner {
    captures: BTreeMap<CaptureId, Entry>,
    next_generation: u64,
    shutting_down: bool,
}

struct Entry {
    info: CaptureInfo,
    run: Option<CaptureHandle>,
}

impl Entry {
    /// The capture's record with live counters when it runs.
    fn snapshot(&self) -> CaptureInfo {
        let mut info = self.info.clone();
        if let Some(run) = &self.run {
            info.counters = run.counters.snapshot();
        }
        info
    }

    fn label(&self) -> String {
        match self.info.aliases.first() {
            Some(a) => format!("capture {} ({a})", self.info.id),
            None => format!("capture {}", self.info.id),
        }
    }
}

impl Registry {
    /// Opens the data directory: database, spool repair, catalog check; then resumes the
    /// captures that were running. Capture events are applied by a task on the runtime.
    pub fn open(config: Config) -> Result<Arc<Registry>> {
        let data_dir = config.data_dir.clone();
        create_private_dir(&data_dir)?;
        create_private_dir(&data_dir.join("captures"))?;
        let store = Arc::new(Store::open(&data_dir.join(DB_FILE))?);
        let mut captures = BTreeMap::new();
        for mut info in store.load_captures()? {
            let dir = spool::capture_dir(&data_dir, info.id);
            let r = catalog::reconcile(&store, info.id, &dir)?;
            if r.repaired > 0 || r.rebuilt {
                tracing::warn!(
                    capture.id = info.id,
                    repaired = r.repaired,
                    rebuilt = r.rebuilt,
                    "spool catalog brought back in line with the disk"
                );
            }
            info.counters.spool_bytes = r.segments.iter().map(|s| s.bytes).sum();
            info.counters.spool_segments = r.segments.len() as u32;
            // Counters are saved every few seconds; after a crash the spool knows better.
            // Sequence numbers are never reused, so the last one counts every packet spooled.
            let c = &mut info.counters;
            if r.last_seq() > c.spooled_packets {
                let header_bytes = 24 * r.segments.len() as u64;
                c.spooled_packets = r.last_seq();
                c.spooled_bytes = c
                    .spooled_bytes
                    .max(c.spool_bytes.saturating_sub(header_bytes));
                c.received = c.received.max(c.spooled_packets);
            }
            captures.insert(info.id, Entry { info, run: None });
        }
        let (events, rx) = mpsc::unbounded_channel();
        let registry = Arc::new(Registry {
            inner: Mutex::new(Inner {
                captures,
                next_generation: 1,
                shutting_down: false,
            }),
            store,
            data_dir,
            config: RwLock::new(config),
            events,
            readers: Arc::default(),
        });
        tokio::spawn(registry.clone().apply_events(rx));
        registry.resume();
        Ok(registry)
    }

    /// Starts the captures that were running when the daemon last stopped.
    fn resume(&self) {
        let mut inner = self.lock();
        let ids: Vec<CaptureId> = inner
            .captures
            .values()
            .filter(|e| e.info.state.is_running())
            .map(|e| e.info.id)
            .collect();
        for id in ids {
            match self.start_locked(&mut inner, id) {
                Ok(()) => tracing::info!(capture.id = id, "resumed"),
                Err(e) => tracing::error!(capture.id = id, error = %e, "could not resume"),
            }
        }
    }

    /// Applies the capture threads' reports, ignoring those of runs that already ended.
    async fn apply_events(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Event>) {
        while let Some(ev) = rx.recv().await {
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.apply_event(ev)).await;
        }
    }

    fn apply_event(&self, ev: Event) {
        let mut inner = self.lock();
        if inner.shutting_down {
            return;
        }
        let (id, generation, state, reason, exited) = match ev {
            Event::State {
                id,
                generation,
                state,
                reason,
            } => (id, generation, state, reason, false),
            Event::Exited {
                id,
                generation,
                state,
                reason,
            } => (id, generation, state, reason, true),
        };
        let Some(entry) = inner.captures.get_mut(&id) else {
            return;
        };
        if entry.run.as_ref().map(|r| r.generation) != Some(generation) {
            return;
        }
        if exited {
            let run = entry.run.take().expect("checked above");
            entry.info.counters = run.counters.snapshot();
            // A thread that failed may have left its segment open: repair and close it now.
            let dir = spool::capture_dir(&self.data_dir, id);
            if let Err(e) = catalog::reconcile(&self.store, id, &dir) {
                tracing::error!(capture.id = id, error = %e, "checking the spool after the capture ended");
            }
        }
        entry.info.state = state;
        entry.info.reason = reason;
        let info = entry.snapshot();
        if let Err(e) = self.store.put_capture(&info) {
            tracing::error!(capture.id = id, error = %e, "saving capture state");
        }
    }

    /// Saves the counters of running captures (called periodically and at exit).
    pub fn persist_counters(&self) {
        let inner = self.lock();
        let infos: Vec<CaptureInfo> = inner
            .captures
            .values()
            .filter(|e| e.run.is_some())
            .map(Entry::snapshot)
            .collect();
        if let Err(e) = self.store.put_captures(&infos) {
            tracing::error!(error = %e, "saving capture counters");
        }
    }

    /// Applies a reloaded configuration; running captures pick it up when next started.
    pub fn reload(&self, config: Config) {
        *self.config.write().expect("config lock") = config;
    }

    /// Stops every capture thread, closing segments, and keeps each capture's state so that
    /// running ones resume on the next start.
    pub fn shutdown(&self) {
        let mut inner = self.lock();
        inner.shutting_down = true;
        for entry in inner.captures.values() {
            if let Some(run) = &entry.run {
                run.request(Control::Shutdown);
            }
        }
        let mut infos = Vec::new();
        for entry in inner.captures.values_mut() {
            if let Some(run) = entry.run.take() {
                let counters = run.counters.clone();
                run.join();
                entry.info.counters = counters.snapshot();
            }
            infos.push(entry.info.clone());
        }
        if let Err(e) = self.store.put_captures(&infos) {
            tracing::error!(error = %e, "saving captures at exit");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The filter a capture of `user` filter really runs with: without pcapd's own remote
    /// connections.
    fn applied_filter(&self, user: &str) -> String {
        use crate::capture::{device, exclusion};
        let listen = self
            .config
            .read()
            .expect("config lock")
            .remote
            .as_ref()
            .map(|r| r.addr);
        let own = listen.and_then(|l| exclusion::own_traffic(Some(l), &device::host_addresses()));
        exclusion::applied_filter(user, own.as_deref())
    }

    /// Refuses a filter longer than the configured limit.
    fn check_filter_len(&self, filter: &str) -> Result<()> {
        let max = self.config.read().expect("config lock").max_filter_len;
        if filter.len() > max {
            return Err(Error::Invalid(format!(
                "the filter is {} bytes long; pcapd accepts at most {max} (max_filter_len)",
                filter.len()
            )));
        }
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> Config {
        self.config.read().expect("config lock").clone()
    }

    fn policy_for(&self, info: &CaptureInfo) -> RetentionPolicy {
        let config = self.config.read().expect("config lock");
        RetentionPolicy {
            max_bytes: info.retention.max_bytes.unwrap_or(config.default_max_bytes),
            max_age_ns: info
                .retention
                .max_age_secs
                .map(|s| s as i64 * 1_000_000_000),
            floor_percent: config.free_space_floor_percent,
        }
    }

    /// Starts the thread of capture `id` unless it runs already.
    fn start_locked(&self, inner: &mut Inner, id: CaptureId) -> Result<()> {
        if inner.shutting_down {
            return Err(Error::Unavailable("pcapd is shutting down".into()));
        }
        let generation = inner.next_generation;
        let entry = inner
            .captures
            .get_mut(&id)
            .ok_or_else(|| not_found_id(id))?;
        if entry.run.is_some() {
            return Ok(());
        }
        let dir = spool::capture_dir(&self.data_dir, id);
        let closed = catalog::reconcile(&self.store, id, &dir)?.segments;
        entry.info.applied_filter = self.applied_filter(&entry.info.filter);
        let info = &entry.info;
        let params = CaptureParams {
            id,
            generation,
            device: crate::capture::device::device_name(&info.target).to_owned(),
            filter: info.applied_filter.clone(),
            snaplen: info.snaplen,
            promisc: info.promisc,
            buffer_bytes: self
                .config
                .read()
                .expect("config lock")
                .capture_buffer_bytes,
            all_interfaces: info.target.interface.is_none(),
            link_type: info.link_type,
            stop: info.stop,
            dir,
            store: self.store.clone(),
            policy: self.policy_for(info),
            closed,
        };
        let (run, state, reason) =
            CaptureHandle::spawn(params, info.counters, self.events.clone())?;
        entry.run = Some(run);
        entry.info.state = state;
        entry.info.reason = reason;
        entry.info.started_unix_ns = pcap_core::parse::unix_ns(std::time::SystemTime::now());
        self.store.put_capture(&entry.info)?;
        inner.next_generation += 1;
        Ok(())
    }

    /// The ids a selector names; an unknown id or alias is an error, `--all` may be empty.
    fn resolve(inner: &Inner, sel: &Selector) -> Result<Vec<CaptureId>> {
        match sel {
            Selector::All => Ok(inner.captures.keys().copied().collect()),
            Selector::Id(id) if inner.captures.contains_key(id) => Ok(vec![*id]),
            Selector::Id(id) => Err(not_found_id(*id)),
            Selector::Alias(a) => inner
                .captures
                .values()
                .find(|e| e.info.aliases.contains(a))
                .map(|e| vec![e.info.id])
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "no capture is called \"{a}\"; `pcap list` shows the captures and their aliases"
                    ))
                }),
        }
    }
}

fn not_found_id(id: CaptureId) -> Error {
    Error::NotFound(format!(
        "no capture has id {id}; `pcap list` shows the captures"
    ))
}

/// Creates a directory readable by its owner and group only.
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}
