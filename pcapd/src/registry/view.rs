//! What a capture's owner publishes for everyone else to read without waiting for it: the
//! capture's record, and while it runs, its live counters and its thread's controller.

use std::sync::{Arc, Mutex, MutexGuard};

use pcap_core::domain::CaptureInfo;

use crate::capture::{Controller, LiveCounters};

/// The capture as last published by its owner.
pub struct View {
    inner: Mutex<Published>,
}

pub(super) struct Published {
    pub(super) info: CaptureInfo,
    /// Present while a thread runs.
    pub(super) run: Option<(Arc<LiveCounters>, Controller)>,
}

impl View {
    pub(super) fn new(info: CaptureInfo) -> View {
        View {
            inner: Mutex::new(Published { info, run: None }),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Published> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The capture's record, with live counters while it runs.
    pub fn snapshot(&self) -> CaptureInfo {
        let p = self.lock();
        let mut info = p.info.clone();
        if let Some((counters, _)) = &p.run {
            info.counters = counters.snapshot();
        }
        info
    }

    /// Reads the record without copying it.
    pub fn with<T>(&self, f: impl FnOnce(&CaptureInfo) -> T) -> T {
        f(&self.lock().info)
    }

    /// Changes the record in place; only for what the registry owns across captures
    /// (aliases). The caller then asks the owner to persist it.
    pub fn update(&self, f: impl FnOnce(&mut CaptureInfo)) {
        f(&mut self.lock().info)
    }

    /// The running thread's controller, if it runs.
    pub fn controller(&self) -> Option<Controller> {
        self.lock().run.as_ref().map(|(_, c)| c.clone())
    }
}

/// "capture 3 (web)", for messages.
pub fn label(info: &CaptureInfo) -> String {
    match info.aliases.first() {
        Some(a) => format!("capture {} ({a})", info.id),
        None => format!("capture {}", info.id),
    }
}

/// Where a capture's packets come from, for messages: "on eth0 with filter \"port 80\"", or
/// "imported from trace.pcap".
pub fn source(info: &CaptureInfo) -> String {
    match &info.imported_from {
        Some(file) => format!("imported from {file}"),
        None => format!("on {} with filter {:?}", info.target, info.filter),
    }
}
