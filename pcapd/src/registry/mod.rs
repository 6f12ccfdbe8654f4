//! The registry: every capture, each owned by a task of its own ([`actor`]).
//!
//! Shape: an actor per capture. A capture's owner task alone changes its record, runs
//! and joins its thread and writes it to the database, taking commands one at a time
//! from its mailbox, so that operations on one capture are serialised and operations on
//! two captures never wait for each other. The registry itself only holds the map from
//! ids to owners, behind a lock taken for lookups and inserts and never across I/O, a
//! thread spawn or a join; `list`, `replay` and `listen` read what owners publish and
//! never queue behind a slow start or a disk. Chosen over one registry task with a
//! command channel (as firecracker's VMM thread) because that task would serialise
//! every capture's starts, stops and fsyncs behind each other, which is what made `list`
//! wait behind a slow start.

pub mod access;
mod actor;
mod import;
mod ops;
mod readers;
mod streams;
mod view;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use pcap_core::domain::{CaptureId, CaptureInfo, Selector};

use crate::config::{Config, Current};
use crate::decode::DecodeMetrics;
use crate::spool::{self, catalog};
use crate::store::Store;
use crate::{Error, Result};

pub use access::Caller;
use actor::{CaptureRef, Command, Shared};
pub use import::ImportPart;
pub use readers::{ReaderGuard, ReaderKind, ReaderStats};
pub use streams::ReplaySource;
pub use view::label;

/// Name of the database file in the data directory.
const DB_FILE: &str = "registry.redb";

/// All captures known to the daemon.
pub struct Registry {
    captures: Mutex<Captures>,
    shared: Arc<Shared>,
    /// The Replay, Listen and Decode streams being served, for metrics.
    readers: Arc<readers::Readers>,
}

struct Captures {
    by_id: BTreeMap<CaptureId, CaptureRef>,
    /// The id the next capture gets; ids are never reused.
    next_id: CaptureId,
    shutting_down: bool,
}

impl Registry {
    /// Opens the data directory: database, spool repair, catalog check; then resumes the
    /// captures that were running. Blocking: call it before serving, off the runtime's
    /// workers but inside the runtime (owners are tasks).
    pub fn open(config: Config) -> Result<Arc<Registry>> {
        let data_dir = config.data_dir.clone();
        crate::netns::set_runtime(tokio::runtime::Handle::current());
        create_private_dir(&data_dir)?;
        create_private_dir(&data_dir.join("captures"))?;
        let store = Arc::new(Store::open(&data_dir.join(DB_FILE))?);
        let mut infos = Vec::new();
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
            // No capture holds a ring before it starts again.
            c.ring_bytes = 0;
            if r.last_seq() > c.spooled_packets {
                let header_bytes = 24 * r.segments.len() as u64;
                c.spooled_packets = r.last_seq();
                c.spooled_bytes = c
                    .spooled_bytes
                    .max(c.spool_bytes.saturating_sub(header_bytes));
                c.received = c.received.max(c.spooled_packets);
            }
            infos.push(info);
        }
        let known: Vec<CaptureId> = infos.iter().map(|i| i.id).collect();
        import::remove_orphans(&store, &data_dir, &known)?;
        let next_id = store.next_id()?;
        let shared = Arc::new(Shared {
            store,
            data_dir,
            ring_budget: crate::capture::ring::RingBudget::new(config.capture_memory_bytes),
            config: Current::new(config),
            generations: 1.into(),
            decode_metrics: Arc::default(),
        });
        let mut by_id = BTreeMap::new();
        let mut resume = Vec::new();
        for info in infos {
            let id = info.id;
            let running = info.state.is_running();
            let capture = CaptureRef::spawn(info, shared.clone());
            if running {
                resume.push((id, capture.clone()));
            }
            by_id.insert(id, capture);
        }
        let registry = Arc::new(Registry {
            captures: Mutex::new(Captures {
                by_id,
                next_id,
                shutting_down: false,
            }),
            shared,
            readers: Arc::default(),
        });
        for (id, capture) in resume {
            tokio::spawn(async move {
                let started = capture
                    .ask(|reply| Command::Start { stop: None, reply })
                    .await
                    .and_then(|r| r);
                match started {
                    Ok(info) => tracing::info!(capture.id = id, state = %info.state, "resumed"),
                    Err(e) => tracing::error!(capture.id = id, error = %e, "could not resume"),
                }
            });
        }
        Ok(registry)
    }

    /// Every capture with current counters.
    pub fn list(&self) -> Vec<CaptureInfo> {
        self.current().iter().map(|c| c.view.snapshot()).collect()
    }

    /// The captures not deleted.
    fn current(&self) -> Vec<CaptureRef> {
        let captures = self.lock();
        captures.live().cloned().collect()
    }

    /// The metrics of the captures decoded while capturing.
    pub fn decode_metrics(&self) -> Arc<DecodeMetrics> {
        self.shared.decode_metrics.clone()
    }

    /// The configuration in force.
    pub fn settings(&self) -> Arc<Config> {
        self.shared.config.get()
    }

    /// Puts a reloaded configuration in force and applies it to every capture (the
    /// self-exclusion of a changed listener, retention), waiting until each has it.
    pub async fn reload(&self, config: Config) {
        self.shared.config.set(config);
        let config = self.shared.config.get();
        for capture in self.current() {
            let config = config.clone();
            // A capture deleted meanwhile needs nothing.
            let _ = capture
                .ask(|reply| Command::Reconfigure(config, reply))
                .await;
        }
    }

    /// Stops every capture thread, closing segments, and keeps each capture's state so
    /// that running ones resume on the next start.
    pub async fn shutdown(&self) {
        let refs: Vec<CaptureRef> = {
            let mut captures = self.lock();
            captures.shutting_down = true;
            captures.by_id.values().cloned().collect()
        };
        let mut waiting = Vec::new();
        for capture in &refs {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if capture.send(Command::Shutdown(tx)) {
                waiting.push(rx);
            }
        }
        for rx in waiting {
            let _ = rx.await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Captures> {
        self.captures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses a filter longer than the configured limit.
    fn check_filter_len(&self, filter: &str) -> Result<()> {
        let max = self.shared.config.get().max_filter_len;
        if filter.len() > max {
            return Err(Error::Invalid(format!(
                "the filter is {} bytes long; pcapd accepts at most {max} (max_filter_len)",
                filter.len()
            )));
        }
        Ok(())
    }

    /// The captures a selector names; an unknown id or alias is an error, `--all` may be
    /// empty.
    fn resolve(&self, sel: &Selector) -> Result<Vec<CaptureRef>> {
        let captures = self.lock();
        match sel {
            Selector::All => Ok(captures.live().cloned().collect()),
            Selector::Id(id) => captures
                .by_id
                .get(id)
                .filter(|c| !c.is_gone())
                .map(|c| vec![c.clone()])
                .ok_or_else(|| not_found_id(*id)),
            Selector::Alias(a) => captures
                .live()
                .find(|c| c.view.with(|i| i.aliases.contains(a)))
                .map(|c| vec![c.clone()])
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "no capture is called \"{a}\"; `pcap list` shows the captures and their aliases"
                    ))
                }),
        }
    }
}

impl Captures {
    /// The captures whose owners still run (a deleted one leaves the map a moment after
    /// its owner ends).
    fn live(&self) -> impl Iterator<Item = &CaptureRef> {
        self.by_id.values().filter(|c| !c.is_gone())
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

/// Records for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use pcap_core::domain::{CaptureInfo, Counters, State, Target};

    /// A capture record with nothing set.
    pub fn capture_info() -> CaptureInfo {
        CaptureInfo {
            id: 1,
            aliases: vec![],
            target: Target::default(),
            filter: String::new(),
            applied_filter: String::new(),
            snaplen: 262_144,
            promisc: true,
            stop: Default::default(),
            retention: Default::default(),
            owner: "uid 0 (root)".into(),
            state: State::Pending,
            reason: String::new(),
            counters: Counters::default(),
            link_type: 1,
            created_unix_ns: 0,
            started_unix_ns: 0,
            anchor: None,
            netns_cookie: None,
            interface_names: Default::default(),
            decode: Vec::new(),
            imported_from: None,
        }
    }
}
