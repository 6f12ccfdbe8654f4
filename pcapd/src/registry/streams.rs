//! What `Replay` and `Listen` need from the registry: where the spool is, up to which
//! sequence number to read it, and a live queue that starts right after that.

use std::path::PathBuf;

use pcap_core::domain::{CaptureId, ListenSpec, ReplaySpec, State};

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
    pub fn open_replay(&self, spec: &ReplaySpec) -> Result<ReplaySource> {
        self.check_filter_len(&spec.filter)?;
        let (id, link_type, snaplen, pending) = {
            let inner = self.lock();
            let id = Self::resolve(&inner, &spec.selector)?[0];
            let entry = &inner.captures[&id];
            let pending = entry
                .run
                .as_ref()
                .map(|r| r.subscribe_request())
                .transpose()?;
            (id, entry.info.link_type, entry.info.snaplen, pending)
        };
        let filter = match spec.filter.as_str() {
            "" => None,
            f => Some(device::compile_offline(link_type, f)?),
        };
        let (upto_seq, sub) = match pending {
            Some(rx) => {
                let (seq, sub) = rx.blocking_recv().map_err(|_| {
                    Error::Precondition("the capture stopped as the replay began; try again".into())
                })?;
                (seq, spec.live.then_some(sub))
            }
            // A capture that is not running appends nothing: everything on disk is the
            // spool, including a segment its thread could not close (a full disk).
            None => (u64::MAX, None),
        };
        let catalog = self.store.segments(id)?;
        Ok(ReplaySource {
            id,
            link_type,
            snaplen,
            dir: spool::capture_dir(&self.data_dir, id),
            catalog,
            upto_seq,
            filter,
            live: sub,
        })
    }

    /// Subscribes to a running capture's new packets.
    pub fn open_listen(&self, spec: &ListenSpec) -> Result<(CaptureId, u32, u32, Subscription)> {
        let (id, link_type, snaplen, pending) = {
            let inner = self.lock();
            let id = Self::resolve(&inner, &spec.selector)?[0];
            let entry = &inner.captures[&id];
            let Some(run) = &entry.run else {
                let state = entry.info.state;
                let how = match state {
                    State::Failed => format!(
                        " ({}); start it again with `pcap start {}` once fixed",
                        entry.info.reason, spec.selector
                    ),
                    _ => format!("; start it with `pcap start {}` first", spec.selector),
                };
                return Err(Error::Precondition(format!(
                    "{} is {state}{how}",
                    entry.label()
                )));
            };
            (
                id,
                entry.info.link_type,
                entry.info.snaplen,
                run.subscribe_request()?,
            )
        };
        let (_, sub) = pending
            .blocking_recv()
            .map_err(|_| Error::Precondition("the capture stopped as the listener began".into()))?;
        Ok((id, link_type, snaplen, sub))
    }
}
