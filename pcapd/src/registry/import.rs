//! `import`: a pcap or pcapng file, read by the client and sent as savefile records, becomes
//! a new capture. The records are written to the capture's spool by the spool's own writer
//! as they come; the capture is registered only once the whole file is in and closed on
//! disk, so that `list` never shows half an import. An import that fails (damage the client
//! met, a stream that broke off, a size over the retention limit, the disk) removes what it
//! wrote and its catalog, and leaves no capture behind.

use std::path::PathBuf;
use std::sync::Arc;

use pcap_core::domain::{CaptureInfo, Counters, ImportSpec, Retention, State, Target};
use pcap_core::savefile::{FileHeader, Records, Resolution, Tail, RECORD_HEADER_LEN};
use tokio::sync::mpsc;

use super::access::Caller;
use super::actor::{blocking, CaptureRef, Command};
use super::view::{label, source};
use super::Registry;
use crate::spool::retention::RetentionPolicy;
use crate::spool::writer::Spool;
use crate::store::Store;
use crate::{spool, Error, Result};

/// What an import stream carries after its header.
#[derive(Debug)]
pub enum ImportPart {
    /// Savefile records back to back (16-byte little-endian headers), `count` of them, their
    /// fractions in nanoseconds when `nanoseconds`, else microseconds.
    Records {
        records: bytes::Bytes,
        count: u32,
        nanoseconds: bool,
    },
    /// The client read the file to its end and sent this many records.
    End { packets: u64 },
}

/// What was written to the spool of an import.
struct Written {
    packets: u64,
    /// Record bytes, headers included (the spooled_bytes counter).
    record_bytes: u64,
    spool_bytes: u64,
    segments: u32,
}

impl Registry {
    /// Imports the records arriving on `parts` as a new capture owned by `caller`. The
    /// stream must end with [`ImportPart::End`]; an error on it (or its end without one)
    /// refuses the import, as does a spool growing beyond the retention limit of the
    /// daemon's default max size. Nothing is left behind on failure.
    pub async fn import(
        &self,
        spec: ImportSpec,
        caller: &Caller,
        parts: mpsc::Receiver<Result<ImportPart>>,
    ) -> Result<CaptureInfo> {
        let id = {
            let mut captures = self.lock();
            if captures.shutting_down {
                return Err(Error::Unavailable("pcapd is shutting down".into()));
            }
            self.check_import_aliases(&captures, &spec)?;
            let max = self.settings().max_captures;
            if captures.live().count() >= max {
                return Err(Error::Unavailable(format!(
                    "pcapd holds {max} captures already (max_captures): delete some with \
                     `pcap delete`"
                )));
            }
            let id = captures.next_id;
            captures.next_id += 1;
            id
        };
        let config = self.settings();
        let policy = config.retention_for(&Retention::default());
        let header = FileHeader {
            link_type: spec.link_type,
            snaplen: spec.snaplen,
            resolution: Resolution::Nano,
        };
        let (store, dir) = (
            self.shared.store.clone(),
            spool::capture_dir(&self.shared.data_dir, id),
        );
        let file_name = spec.file_name.clone();
        let written = {
            let (store, dir) = (store.clone(), dir.clone());
            blocking(move || write(id, dir, store, header, policy, &file_name, parts)).await
        };
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                discard(id, dir, store).await;
                tracing::warn!(capture.id = id, caller = %caller.name, file = %spec.file_name, error = %e, "import refused");
                return Err(e);
            }
        };
        let now = pcap_core::parse::unix_ns(std::time::SystemTime::now());
        let info = CaptureInfo {
            id,
            aliases: spec.aliases.clone(),
            target: Target::default(),
            filter: String::new(),
            applied_filter: String::new(),
            snaplen: spec.snaplen,
            promisc: false,
            stop: Default::default(),
            retention: Retention::default(),
            owner: caller.name.clone(),
            state: State::Finished,
            reason: format!("imported from {}", spec.file_name),
            counters: Counters {
                received: written.packets,
                spooled_packets: written.packets,
                spooled_bytes: written.record_bytes,
                spool_bytes: written.spool_bytes,
                spool_segments: written.segments,
                ..Counters::default()
            },
            link_type: spec.link_type,
            created_unix_ns: now,
            started_unix_ns: 0,
            anchor: None,
            netns_cookie: None,
            interface_names: Default::default(),
            decode: Vec::new(),
            imported_from: Some(spec.file_name.clone()),
        };
        let registered = {
            let mut captures = self.lock();
            // Aliases taken by an init while the file came in.
            match self.check_import_aliases(&captures, &spec) {
                Err(e) => Err(e),
                Ok(()) if captures.shutting_down => {
                    Err(Error::Unavailable("pcapd is shutting down".into()))
                }
                Ok(()) => {
                    let capture = CaptureRef::spawn(info, self.shared.clone());
                    captures.by_id.insert(id, capture.clone());
                    Ok(capture)
                }
            }
        };
        let capture = match registered {
            Ok(c) => c,
            Err(e) => {
                discard(id, dir, store).await;
                return Err(e);
            }
        };
        if let Err(e) = capture.ask(Command::Create).await.and_then(|r| r) {
            // Its owner removes the spool and whatever of the record was written.
            let _ = capture.ask(Command::Delete).await;
            self.lock().by_id.remove(&id);
            discard(id, dir, store).await;
            return Err(e);
        }
        let info = capture.view.snapshot();
        tracing::info!(capture.id = id, owner = %caller.name, file = %spec.file_name, packets = written.packets, bytes = written.spool_bytes, "capture imported");
        Ok(info)
    }

    /// Refuses aliases that a capture has already: an imported capture shares none.
    fn check_import_aliases(&self, captures: &super::Captures, spec: &ImportSpec) -> Result<()> {
        for alias in &spec.aliases {
            let taken = captures.live().find_map(|c| {
                c.view
                    .with(|i| i.aliases.contains(alias).then(|| (label(i), source(i))))
            });
            if let Some((other, source)) = taken {
                return Err(Error::AlreadyExists(format!(
                    "alias \"{alias}\" is already used by {other} {source}; choose another \
                     alias, or remove it with `pcap delete {alias}`"
                )));
            }
        }
        Ok(())
    }
}

/// Writes the records of `parts` into a new spool in `dir`, closed and catalogued when it
/// returns Ok.
fn write(
    id: u64,
    dir: PathBuf,
    store: Arc<Store>,
    header: FileHeader,
    policy: RetentionPolicy,
    file_name: &str,
    mut parts: mpsc::Receiver<Result<ImportPart>>,
) -> Result<Written> {
    let mut spool = Spool::new(id, &dir, store, header, policy, Vec::new())?;
    let mut packets = 0u64;
    let mut record_bytes = 0u64;
    let written = loop {
        let Some(part) = parts.blocking_recv() else {
            break Err(Error::Invalid(format!(
                "the import of {file_name} ended before the end of the file (after {packets} \
                 packets); nothing was kept"
            )));
        };
        let (records, count, nanoseconds) = match part {
            Err(e) => break Err(e),
            Ok(ImportPart::End { packets: sent }) if sent != packets => {
                break Err(Error::Invalid(format!(
                    "the import of {file_name} says it sent {sent} packets, but pcapd received \
                     {packets}; nothing was kept"
                )))
            }
            Ok(ImportPart::End { .. }) => break Ok(()),
            Ok(ImportPart::Records {
                records,
                count,
                nanoseconds,
            }) => (records, count, nanoseconds),
        };
        let res = Resolution::nano_if(nanoseconds);
        let mut it = Records::new(&records, header.snaplen);
        let mut n = 0u32;
        let mut failed = None;
        for (h, data) in it.by_ref() {
            if let Err(e) = spool.append(h.ts_ns(res), h.origlen, data) {
                failed = Some(e);
                break;
            }
            n += 1;
            record_bytes += (RECORD_HEADER_LEN + data.len()) as u64;
        }
        packets += u64::from(n);
        if let Some(e) = failed {
            break Err(e);
        }
        if it.tail() != Tail::Clean || n != count {
            break Err(Error::Invalid(format!(
                "a batch of records of {file_name} is malformed after packet {packets} (it \
                 says {count} records; {n} whole records with captured lengths of at most \
                 the snaplen {} and the original length were found); nothing was kept",
                header.snaplen
            )));
        }
        let (bytes, _) = spool.size();
        if bytes > policy.max_bytes {
            break Err(Error::Invalid(format!(
                "{file_name} does not fit the spool: after {packets} packets its spool holds \
                 {bytes} bytes, more than the limit of {} bytes (default_max_size in pcapd's \
                 config); import a smaller part of it (editcap -r or -A/-B) or raise the limit; \
                 nothing was kept",
                policy.max_bytes
            )));
        }
        let deficit = spool.floor_deficit();
        if deficit > 0 {
            break Err(Error::Unavailable(format!(
                "the disk holding pcapd's spool is {deficit} bytes short of its free-space \
                 floor (free_space_floor_percent) while importing {file_name}; free some \
                 space; nothing was kept"
            )));
        }
        if let Some(e) = spool.take_failure() {
            break Err(e);
        }
    };
    let closed = spool.close();
    written?;
    closed?;
    let (spool_bytes, segments) = spool.size();
    Ok(Written {
        packets,
        record_bytes,
        spool_bytes,
        segments,
    })
}

/// Removes the spool directories (and catalog entries) of ids that have no capture: what an
/// import cut short by the daemon's end wrote before it could register its capture. Run at
/// start-up, before any capture runs.
pub(super) fn remove_orphans(
    store: &Store,
    data_dir: &std::path::Path,
    known: &[u64],
) -> Result<()> {
    let captures = data_dir.join("captures");
    let entries = match std::fs::read_dir(&captures) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&captures, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&captures, e))?;
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if known.contains(&id) {
            continue;
        }
        let dir = entry.path();
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        store.delete_capture(id)?;
        tracing::warn!(capture.id = id, dir = %dir.display(), "removed a spool without a capture (an import cut short)");
    }
    Ok(())
}

/// Removes what a failed import wrote: its spool directory and catalog.
async fn discard(id: u64, dir: PathBuf, store: Arc<Store>) {
    let removed = blocking(move || {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&dir, e)),
        }
        store.delete_capture(id)
    })
    .await;
    if let Err(e) = removed {
        tracing::error!(capture.id = id, error = %e, "removing what a failed import wrote");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_core::savefile::encode_record;

    fn records(n: u32, len: usize) -> ImportPart {
        let mut records = Vec::new();
        for i in 0..n {
            encode_record(
                &mut records,
                Resolution::Nano,
                1_795_000_000_000_000_007 + i64::from(i),
                len as u32,
                &vec![i as u8; len],
            );
        }
        ImportPart::Records {
            records: records.into(),
            count: n,
            nanoseconds: true,
        }
    }

    /// Runs `write` over `parts` into a fresh spool limited to `max_bytes`.
    fn run(parts: Vec<Result<ImportPart>>, max_bytes: u64) -> (tempfile::TempDir, Result<Written>) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&tmp.path().join("db")).unwrap());
        let (tx, rx) = mpsc::channel(parts.len().max(1));
        for p in parts {
            tx.try_send(p).unwrap();
        }
        drop(tx);
        let header = FileHeader {
            link_type: 1,
            snaplen: 262_144,
            resolution: Resolution::Nano,
        };
        let policy = RetentionPolicy {
            max_bytes,
            max_age_ns: None,
            floor_percent: 0.0,
        };
        let dir = tmp.path().join("captures/1");
        let r = write(1, dir, store, header, policy, "t.pcap", rx);
        (tmp, r)
    }

    #[test]
    fn a_whole_stream_is_written_and_counted() {
        let (tmp, r) = run(
            vec![
                Ok(records(3, 100)),
                Ok(records(2, 50)),
                Ok(ImportPart::End { packets: 5 }),
            ],
            1 << 20,
        );
        let w = r.unwrap();
        assert_eq!((w.packets, w.record_bytes), (5, 3 * 116 + 2 * 66));
        assert_eq!(w.segments, 1);
        assert_eq!(w.spool_bytes, 24 + w.record_bytes);
        let segs = crate::spool::list_segments(&tmp.path().join("captures/1")).unwrap();
        assert_eq!(segs.len(), 1);
        assert!(!segs[0].0.open);
    }

    #[test]
    fn streams_without_their_end_or_with_another_count_are_refused() {
        let e = run(vec![Ok(records(3, 10))], 1 << 20).1.err().unwrap();
        assert!(
            e.to_string()
                .contains("ended before the end of the file (after 3 packets)"),
            "{e}"
        );
        let e = run(
            vec![Ok(records(3, 10)), Ok(ImportPart::End { packets: 4 })],
            1 << 20,
        )
        .1
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .contains("sent 4 packets, but pcapd received 3"),
            "{e}"
        );
        let e = run(
            vec![Ok(records(1, 10)), Err(Error::Invalid("gone".into()))],
            1 << 20,
        )
        .1
        .err()
        .unwrap();
        assert_eq!(e.to_string(), "gone");
    }

    #[test]
    fn a_batch_that_lies_about_its_records_is_refused() {
        let ImportPart::Records { records, .. } = records(2, 10) else {
            unreachable!()
        };
        let e = run(
            vec![Ok(ImportPart::Records {
                records: records.slice(..records.len() - 1),
                count: 2,
                nanoseconds: true,
            })],
            1 << 20,
        )
        .1
        .err()
        .unwrap();
        assert!(e.to_string().contains("malformed after packet 1"), "{e}");
    }

    #[test]
    fn more_than_the_limit_is_refused_naming_it() {
        let e = run(
            vec![Ok(records(100, 1000)), Ok(ImportPart::End { packets: 100 })],
            64 << 10,
        )
        .1
        .err()
        .unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains("does not fit the spool") && msg.contains("limit of 65536 bytes"),
            "{msg}"
        );
    }

    #[test]
    fn spools_without_a_capture_are_removed_at_start() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("db")).unwrap();
        for d in ["1", "2", "notes"] {
            std::fs::create_dir_all(tmp.path().join("captures").join(d)).unwrap();
        }
        let seg = crate::store::SegmentMeta {
            first_seq: 1,
            packets: 1,
            first_ts_ns: 1,
            last_ts_ns: 1,
            bytes: 40,
        };
        store.put_segment(2, &seg).unwrap();
        remove_orphans(&store, tmp.path(), &[1]).unwrap();
        assert!(tmp.path().join("captures/1").exists());
        assert!(tmp.path().join("captures/notes").exists());
        assert!(!tmp.path().join("captures/2").exists());
        assert!(store.segments(2).unwrap().is_empty());
    }
}
