//! Live captures: one OS thread per running capture reads with libpcap, writes the spool
//! itself and feeds live readers. The registry talks to it through [`CaptureHandle`];
//! it reports back through [`Event`]s.

pub mod device;
mod engine;
pub mod exclusion;
pub mod live;
mod open;
mod overlap;
pub mod ring;
pub mod tap;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use pcap_core::domain::{CaptureId, Counters, State, StopConditions};
use tokio::sync::{mpsc as tmpsc, oneshot};

use crate::spool::retention::RetentionPolicy;
use crate::store::{SegmentMeta, Store};
use crate::{Error, Result};
use live::Subscription;

/// What a capture thread needs to run.
pub struct CaptureParams {
    pub id: CaptureId,
    /// Distinguishes this run from earlier ones of the same capture, so late events of a
    /// finished run are not taken for news.
    pub generation: u64,
    pub device: String,
    /// The network namespace to capture in; `None` is pcapd's own.
    pub netns: Option<pcap_core::domain::Netns>,
    /// The process that anchored that namespace when the capture was defined.
    pub anchor: Option<pcap_core::domain::ProcessRef>,
    /// The cookie an inode target's namespace had when the capture was defined.
    pub netns_cookie: Option<u64>,
    /// The filter compiled into the kernel.
    pub filter: String,
    pub snaplen: u32,
    pub promisc: bool,
    /// How big the kernel ring is.
    pub ring: RingPlan,
    /// Running captures on one interface with a socket of their own before the next ones
    /// share one (`shared_ring_after`).
    pub share_after: usize,
    /// On libpcap's `any` device (all interfaces, or several): recorded as LINUX_SLL2.
    pub all_interfaces: bool,
    /// The interfaces named (empty: all). With several, the kernel filter keeps only
    /// their packets, by the indexes they have when the device is opened.
    pub interfaces: Vec<String>,
    pub link_type: u32,
    pub stop: StopConditions,
    pub dir: PathBuf,
    pub store: Arc<Store>,
    pub policy: RetentionPolicy,
    /// Closed segments on disk, oldest first.
    pub closed: Vec<SegmentMeta>,
}

/// How a capture's kernel ring is sized.
#[derive(Debug, Clone)]
pub enum RingPlan {
    /// Always this many bytes (`capture_buffer` in the configuration).
    Fixed(u32),
    /// Following the capture's traffic, within a budget shared by all captures.
    Shared(Arc<ring::RingBudget>),
}

/// Requests the registry sends to a capture thread.
pub enum Control {
    /// A user stopped the capture: close the spool and end as PAUSED.
    Stop,
    /// The daemon is exiting: close the spool and end, keeping the state.
    Shutdown,
    /// Flush the spool and add a live reader; replies with the last sequence number on
    /// disk, so that the reader's queue starts exactly after it.
    Subscribe(oneshot::Sender<(u64, Subscription)>),
    /// Capture with this filter and keep the spool within this policy from now on (a
    /// reloaded configuration); replies once the kernel has the new filter, or why not.
    Reconfigure {
        filter: String,
        policy: RetentionPolicy,
        reply: oneshot::Sender<std::result::Result<(), String>>,
    },
}

/// What a capture thread tells the registry.
#[derive(Debug)]
pub enum Event {
    /// The capture changed state while running (ACTIVE <-> RETRYING).
    State {
        id: CaptureId,
        generation: u64,
        state: State,
        reason: String,
    },
    /// The device was opened (or took a new filter): the interfaces' indexes and names
    /// (those named, or all of the namespace's), and the filter now in the kernel.
    Opened {
        id: CaptureId,
        generation: u64,
        interface_names: std::collections::BTreeMap<u32, String>,
        filter: String,
    },
    /// The thread ended in this state.
    Exited {
        id: CaptureId,
        generation: u64,
        state: State,
        reason: String,
    },
}

macro_rules! live_counters {
    ($($field:ident: $ty:ty,)*) => {
        /// Counters shared between a capture thread and the registry.
        #[derive(Debug, Default)]
        pub struct LiveCounters {
            $(pub $field: AtomicU64,)*
        }

        impl LiveCounters {
            /// Starts from persisted counters.
            pub fn from_counters(c: &Counters) -> Self {
                LiveCounters {
                    $($field: u64::from(c.$field).into(),)*
                }
            }

            /// The counters now.
            pub fn snapshot(&self) -> Counters {
                Counters {
                    $($field: self.$field.load(Relaxed) as $ty,)*
                }
            }
        }
    };
}
pcap_core::counter_fields!(live_counters);

/// The registry's handle on a running capture thread: the thread itself, which only the
/// capture's owner joins, and a [`Controller`] that readers may clone to talk to it.
pub struct CaptureHandle {
    pub generation: u64,
    pub counters: Arc<LiveCounters>,
    pub controller: Controller,
    thread: Option<JoinHandle<()>>,
}

/// Sends requests to a capture thread; cheap to clone, so that readers subscribe without
/// going through the capture's owner.
#[derive(Clone)]
pub struct Controller {
    control: mpsc::Sender<Control>,
    /// Wakes the thread from its poll so that a request is seen at once.
    waker: Arc<UnixDatagram>,
}

/// The first state a new capture thread reaches (ACTIVE, RETRYING, or why it could not
/// start), told once.
pub type Ready = oneshot::Receiver<(State, String)>;

impl CaptureHandle {
    /// Starts a capture thread. It reports the first state it reaches on the returned
    /// [`Ready`], and everything after that as [`Event`]s. A thread that panics reports
    /// FAILED with the panic's message, like any other end.
    pub fn spawn(
        params: CaptureParams,
        counters: Counters,
        events: tmpsc::UnboundedSender<Event>,
    ) -> Result<(CaptureHandle, Ready)> {
        let counters = Arc::new(LiveCounters::from_counters(&counters));
        let (control, rx) = mpsc::channel();
        let (waker, woken) = UnixDatagram::pair()
            .and_then(|(a, b)| {
                a.set_nonblocking(true)?;
                b.set_nonblocking(true)?;
                Ok((a, b))
            })
            .map_err(|e| Error::Unavailable(format!("cannot start a capture thread: {e}")))?;
        let (id, generation) = (params.id, params.generation);
        let shared = counters.clone();
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("capture-{id}"))
            .spawn(move || {
                let crashed = events.clone();
                guarded(id, generation, &crashed, move || {
                    engine::run(params, rx, woken, shared, events, ready_tx)
                })
            })
            .map_err(|e| Error::Unavailable(format!("cannot start a capture thread: {e}")))?;
        let handle = CaptureHandle {
            generation,
            counters,
            controller: Controller {
                control,
                waker: Arc::new(waker),
            },
            thread: Some(thread),
        };
        Ok((handle, ready_rx))
    }

    /// Waits for the thread to end (blocking).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a capture thread's body; a panic in it is reported as the run ending FAILED with
/// the panic's message, like any other end, instead of leaving the capture's owner
/// waiting for a report that never comes.
fn guarded(
    id: CaptureId,
    generation: u64,
    events: &tmpsc::UnboundedSender<Event>,
    body: impl FnOnce(),
) {
    let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) else {
        return;
    };
    let what = panic_message(panic.as_ref());
    let reason = format!(
        "the capture thread crashed ({what}); the spool is kept. This is a bug in pcapd: \
         please report it with pcapd's log"
    );
    tracing::error!(capture.id = id, reason = %reason, "capture thread crashed");
    let _ = events.send(Event::Exited {
        id,
        generation,
        state: State::Failed,
        reason,
    });
}

/// What a panic said, for the report of the thread it ended.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

impl Controller {
    /// Sends a request to the thread and wakes it; false if the thread has ended.
    pub fn request(&self, c: Control) -> bool {
        let sent = self.control.send(c).is_ok();
        // A full socket means a wake-up is pending already.
        let _ = self.waker.send(&[1]);
        sent
    }

    /// Asks for a live reader (see [`Control::Subscribe`]); the answer comes on the
    /// returned channel once the thread has flushed its spool.
    pub fn subscribe_request(&self) -> Result<oneshot::Receiver<(u64, Subscription)>> {
        let (tx, rx) = oneshot::channel();
        if !self.request(Control::Subscribe(tx)) {
            return Err(Error::Precondition("the capture has just stopped".into()));
        }
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_capture_thread_reports_failed_with_the_message() {
        let (tx, mut rx) = tmpsc::unbounded_channel();
        guarded(7, 3, &tx, || panic!("attempt to add with overflow"));
        match rx.try_recv() {
            Ok(Event::Exited {
                id: 7,
                generation: 3,
                state: State::Failed,
                reason,
            }) => assert!(
                reason.contains("crashed (attempt to add with overflow)"),
                "{reason}"
            ),
            other => panic!("expected a FAILED exit, got {other:?}"),
        }
        guarded(7, 4, &tx, || {});
        assert!(
            rx.try_recv().is_err(),
            "a thread that ends normally reports itself"
        );
    }
}
