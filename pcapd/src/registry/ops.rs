//! The registry's commands: init, start, stop, delete, list.

use pcap_core::domain::{CaptureInfo, CaptureSpec, Counters, Selector, State, StopConditions};

use super::{Entry, Registry};
use crate::capture::{device, Control};
use crate::{spool, Error, Result};

impl Registry {
    /// Defines a capture, or adds the aliases to the capture that has the same target and
    /// filter already. Returns the capture and whether it was created.
    pub fn init(&self, spec: CaptureSpec, owner: &str) -> Result<(CaptureInfo, bool)> {
        self.check_filter_len(&spec.filter)?;
        device::check_exists(&spec.target)?;
        device::probe(&spec.target, &spec.filter, spec.snaplen)?;
        let applied_filter = self.applied_filter(&spec.filter);
        let link_type = device::probe(&spec.target, &applied_filter, spec.snaplen)?;
        let mut inner = self.lock();
        for alias in &spec.aliases {
            if let Some(other) = inner.captures.values().find(|e| {
                e.info.aliases.contains(alias)
                    && (e.info.target != spec.target || e.info.filter != spec.filter)
            }) {
                return Err(Error::AlreadyExists(format!(
                    "alias \"{alias}\" is already used by {} on {} with filter {:?}; choose another \
                     alias, or remove it with `pcap delete {alias}`",
                    other.label(),
                    other.info.target,
                    other.info.filter
                )));
            }
        }
        if let Some(entry) = inner
            .captures
            .values_mut()
            .find(|e| e.info.target == spec.target && e.info.filter == spec.filter)
        {
            for alias in spec.aliases {
                if !entry.info.aliases.contains(&alias) {
                    entry.info.aliases.push(alias);
                }
            }
            let info = entry.snapshot();
            self.store.put_capture(&info)?;
            tracing::info!(capture.id = info.id, owner, aliases = ?info.aliases, "aliases added");
            return Ok((info, false));
        }
        let max = self.config.read().expect("config lock").max_captures;
        if inner.captures.len() >= max {
            return Err(Error::Unavailable(format!(
                "pcapd holds {max} captures already (max_captures): delete some with `pcap delete`"
            )));
        }
        let id = self.store.allocate_id()?;
        let info = CaptureInfo {
            id,
            aliases: spec.aliases,
            applied_filter,
            target: spec.target,
            filter: spec.filter,
            snaplen: spec.snaplen,
            promisc: spec.promisc,
            stop: spec.stop,
            retention: spec.retention,
            owner: owner.to_owned(),
            state: State::Pending,
            reason: String::new(),
            counters: Counters::default(),
            link_type,
            created_unix_ns: pcap_core::parse::unix_ns(std::time::SystemTime::now()),
            started_unix_ns: 0,
        };
        self.store.put_capture(&info)?;
        tracing::info!(capture.id = id, owner, target = %info.target, filter = %info.filter, "capture defined");
        inner.captures.insert(
            id,
            Entry {
                info: info.clone(),
                run: None,
            },
        );
        Ok((info, true))
    }

    /// Starts (or resumes) the selected captures.
    /// With `stop`, the captures take these stop conditions from now on.
    pub fn start(
        &self,
        sel: &Selector,
        caller: &str,
        stop: Option<StopConditions>,
    ) -> Result<Vec<CaptureInfo>> {
        let mut inner = self.lock();
        let ids = Self::resolve(&inner, sel)?;
        if let Some(stop) = stop {
            if let Some(running) = ids.iter().find(|id| inner.captures[id].run.is_some()) {
                return Err(Error::Precondition(format!(
                    "{} is running; stop it first to give it new stop conditions",
                    inner.captures[running].label()
                )));
            }
            for id in &ids {
                let entry = inner.captures.get_mut(id).expect("resolved");
                entry.info.stop = stop;
                self.store.put_capture(&entry.info)?;
            }
        }
        let mut out = Vec::new();
        for id in ids {
            self.start_locked(&mut inner, id)?;
            tracing::info!(capture.id = id, caller, "started");
            out.push(inner.captures[&id].snapshot());
        }
        Ok(out)
    }

    /// Pauses the selected captures, waiting until their segments are closed.
    pub fn stop(&self, sel: &Selector, caller: &str) -> Result<Vec<CaptureInfo>> {
        let ids = self.halt(sel, State::Paused)?;
        let inner = self.lock();
        for id in &ids {
            tracing::info!(capture.id = id, caller, "stopped");
        }
        Ok(ids
            .iter()
            .filter_map(|id| inner.captures.get(id))
            .map(Entry::snapshot)
            .collect())
    }

    /// Removes the selected captures and their spool.
    pub fn delete(&self, sel: &Selector, caller: &str) -> Result<Vec<CaptureInfo>> {
        let ids = self.halt(sel, State::Paused)?;
        let mut inner = self.lock();
        let mut out = Vec::new();
        for id in ids {
            let Some(entry) = inner.captures.get(&id) else {
                continue;
            };
            if entry.run.is_some() {
                // Started again meanwhile by another caller: leave it alone.
                continue;
            }
            let dir = spool::capture_dir(&self.data_dir, id);
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&dir, e)),
            }
            self.store.delete_capture(id)?;
            let entry = inner.captures.remove(&id).expect("present above");
            tracing::info!(capture.id = id, caller, "deleted with its spool");
            out.push(entry.info);
        }
        Ok(out)
    }

    /// Every capture with current counters.
    pub fn list(&self) -> Vec<CaptureInfo> {
        self.lock().captures.values().map(Entry::snapshot).collect()
    }

    /// Stops the threads of the selected captures and records `state` for those that ran.
    fn halt(&self, sel: &Selector, state: State) -> Result<Vec<u64>> {
        let (ids, runs) = {
            let mut inner = self.lock();
            let ids = Self::resolve(&inner, sel)?;
            let mut runs = Vec::new();
            for id in &ids {
                let entry = inner.captures.get_mut(id).expect("resolved");
                if let Some(run) = entry.run.take() {
                    run.request(Control::Stop);
                    runs.push((*id, run));
                }
            }
            (ids, runs)
        };
        let mut finished = Vec::new();
        for (id, run) in runs {
            let counters = run.counters.clone();
            run.join();
            finished.push((id, counters.snapshot()));
        }
        let mut inner = self.lock();
        for (id, counters) in finished {
            if let Some(entry) = inner.captures.get_mut(&id).filter(|e| e.run.is_none()) {
                entry.info.counters = counters;
                entry.info.state = state;
                entry.info.reason.clear();
                self.store.put_capture(&entry.info)?;
            }
        }
        Ok(ids)
    }
}
