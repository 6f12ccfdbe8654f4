//! What `Replay` and `Listen` need from the registry: where the spool is, up to which
//! sequence number to read it, and a live queue that starts right after that.

use std::path::PathBuf;

use pcap_core::domain::{CaptureId, ListenSpec, ReplaySpec, State};

use super::actor::blocking;
use super::view::label;
use super::Registry;
use crate::capture::{device, live::Subscription};
use crate::store::SegmentMeta;
use crate::{spool, Error, Result};

/// Everything a replay reads, fixed when it begins.
pub struct ReplaySource {
    pub id: CaptureId,
    pub link_type: u32,
    pub snaplen: u32,
    pub dir: PathBuf,
    pub catalog: Vec<SegmentMeta>,
    /// End of the spool when the replay began; live packets follow it without a gap.
    pub upto_seq: u64,
    pub filter: Option<pcap::BpfProgram>,
    /// New packets after `upto_seq`, for `--live` on a running capture.
    pub live: Option<Subscription>,
}

impl Registry {
    /// Prepares a replay: compiles its filter, and for a running capture flushes the spool
    /// and (with `live`) subscribes in the same step, so that nothing falls between.
    /// Never waits for the capture's owner: a capture starting or stopping meanwhile is
    /// read as it is on disk.
    pub async fn open_replay(&self, spec: &ReplaySpec) -> Result<ReplaySource> {
        self.check_filter_len(&spec.filter)?;
        let capture = self.resolve(&spec.selector)?.remove(0);
        let (id, link_type, snaplen) = capture.view.with(|i| (i.id, i.link_type, i.snaplen));
        let pending = capture
            .view
            .controller()
            .and_then(|c| c.subscribe_request().ok());
        let (upto_seq, live) = match pending {
            Some(rx) => match rx.await {
                Ok((seq, sub)) => (seq, spec.live.then_some(sub)),
                // It stopped as the replay began: all it wrote is on disk.
                Err(_) => (u64::MAX, None),
            },
            // A capture that is not running appends nothing: everything on disk is the
            // spool, including a segment its thread could not close (a full disk).
            None => (u64::MAX, None),
        };
        let (store, filter) = (self.shared.store.clone(), spec.filter.clone());
        let (catalog, filter) = blocking(move || {
            let filter = match filter.as_str() {
                "" => None,
                f => Some(device::compile_offline(link_type, f)?),
            };
            Ok((store.segments(id)?, filter))
        })
        .await?;
        Ok(ReplaySource {
            id,
            link_type,
            snaplen,
            dir: spool::capture_dir(&self.shared.data_dir, id),
            catalog,
            upto_seq,
            filter,
            live,
        })
    }

    /// Subscribes to a running capture's new packets.
    pub async fn open_listen(
        &self,
        spec: &ListenSpec,
    ) -> Result<(CaptureId, u32, u32, Subscription)> {
        let capture = self.resolve(&spec.selector)?.remove(0);
        let not_running = || {
            capture.view.with(|i| {
                let how = match i.state {
                    State::Failed => format!(
                        " ({}); start it again with `pcap start {}` once fixed",
                        i.reason, spec.selector
                    ),
                    _ => format!("; start it with `pcap start {}` first", spec.selector),
                };
                Error::Precondition(format!("{} is {}{how}", label(i), i.state))
            })
        };
        let (id, link_type, snaplen) = capture.view.with(|i| (i.id, i.link_type, i.snaplen));
        let rx = capture
            .view
            .controller()
            .and_then(|c| c.subscribe_request().ok())
            .ok_or_else(not_running)?;
        let (_, sub) = rx.await.map_err(|_| not_running())?;
        Ok((id, link_type, snaplen, sub))
    }
}
