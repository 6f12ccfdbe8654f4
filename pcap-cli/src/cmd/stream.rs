//! `pcap replay` and `pcap listen`: a capture's packets as a pcap savefile, written as the
//! stream delivers them, with the stream's notices told on stderr.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use pcap_core::api::v1::{self as api, notice, stream_message::Kind};
use pcap_core::domain::{ListenSpec, ReplaySpec, Selector, State};
use pcap_core::savefile::{self, FileHeader};
use tonic::Streaming;

use super::Context;
use crate::output::{Destination, Flow};
use crate::progress::Progress;
use crate::rpc::status_error;
use crate::target::Endpoint;
use crate::values::{self, Usage};

/// Arguments of `pcap replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture id or alias, after `REMOTE:` for a remote daemon (`lab:web`)
    #[arg(value_name = "[REMOTE:]ID|ALIAS")]
    capture: String,
    /// After what is spooled, go on with new packets until the capture stops
    #[arg(long)]
    live: bool,
    /// Only packets from T on (RFC 3339, unix seconds, or how long ago: 30s, 5m, 2h; not
    /// before 1970)
    #[arg(long, value_name = "T", value_parser = values::since)]
    since: Option<i64>,
    /// Only packets before T (RFC 3339, unix seconds, or how long ago: 30s, 5m, 2h; not
    /// before 1970)
    #[arg(long, value_name = "T", value_parser = values::until)]
    until: Option<i64>,
    /// Only packets matching this BPF filter
    #[arg(long, value_name = "BPF")]
    filter: Option<String>,
    /// Write the savefile to FILE instead of standard output
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: Option<PathBuf>,
}

/// Arguments of `pcap listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Capture id or alias, after `REMOTE:` for a remote daemon (`lab:web`)
    #[arg(value_name = "[REMOTE:]ID|ALIAS")]
    capture: String,
    /// End after this many packets (at most 10^12)
    #[arg(long, value_name = "N", value_parser = values::count)]
    count: Option<u64>,
    /// Write the savefile to FILE instead of standard output
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: Option<PathBuf>,
}

/// Runs `pcap replay`.
pub async fn replay(args: ReplayArgs, ctx: &Context) -> Result<()> {
    let dest = Destination::choose(args.write.as_deref())?;
    let (endpoint, name) = ctx.targets.resolve(&args.capture)?;
    let spec = ReplaySpec {
        selector: super::manage::selector(false, name)?,
        live: args.live,
        since_unix_ns: args.since,
        until_unix_ns: args.until,
        filter: args.filter.unwrap_or_default().trim().to_owned(),
        raw_records: true,
    };
    let request = api::ReplayRequest::from(&spec);
    ReplaySpec::try_from(request.clone()).map_err(Usage::from)?;
    let mut client = ctx.targets.connect(&endpoint).await?;
    let stream = client
        .replay(request)
        .await
        .map_err(status_error(&endpoint))?
        .into_inner();
    pump(
        stream,
        &dest,
        None,
        (&endpoint, &spec.selector),
        progress(&dest),
    )
    .await
}

/// Runs `pcap listen`.
pub async fn listen(args: ListenArgs, ctx: &Context) -> Result<()> {
    let dest = Destination::choose(args.write.as_deref())?;
    let (endpoint, name) = ctx.targets.resolve(&args.capture)?;
    let spec = ListenSpec {
        selector: super::manage::selector(false, name)?,
        count: args.count,
        raw_records: true,
    };
    let mut client = ctx.targets.connect(&endpoint).await?;
    let stream = client
        .listen(api::ListenRequest::from(&spec))
        .await
        .map_err(status_error(&endpoint))?
        .into_inner();
    pump(
        stream,
        &dest,
        args.count,
        (&endpoint, &spec.selector),
        progress(&dest),
    )
    .await
}

/// A progress line on the terminal for a savefile written with `-w FILE`; none for
/// standard output, whose reader shows what it reads.
fn progress(dest: &Destination) -> Progress {
    match dest {
        Destination::File(path) => Progress::on_stderr(&path.display().to_string()),
        Destination::Stdout => Progress::silent(),
    }
}

/// Copies the stream from `endpoint` into a savefile at `dest` until it ends, the reader
/// goes away or `limit` packets are written, counting what is written into `progress`.
/// `selector` is the capture as the user named it, for notices.
async fn pump(
    mut stream: Streaming<api::StreamMessage>,
    dest: &Destination,
    limit: Option<u64>,
    (endpoint, selector): (&Endpoint, &Selector),
    mut progress: Progress,
) -> Result<()> {
    let header = match stream
        .message()
        .await
        .map_err(status_error(endpoint))?
        .and_then(|m| m.kind)
    {
        Some(Kind::Header(h)) => h,
        Some(_) => bail!("pcapd sent packets before the stream header; this pcap cannot read it"),
        None => bail!("pcapd ended the stream before sending its header"),
    };
    let mut out = dest.open()?;
    let snaplen = match header.snaplen {
        0 => pcap_core::DEFAULT_SNAPLEN,
        n => n,
    };
    if out.header(FileHeader {
        link_type: header.link_type,
        snaplen,
    })? == Flow::ReaderGone
    {
        return Ok(());
    }
    progress.add(0, savefile::FILE_HEADER_LEN as u64);
    let mut remaining = limit;
    let mut notices = Notices::new(selector, header.capture_id);
    while let Some(message) = stream.message().await.map_err(status_error(endpoint))? {
        match message.kind {
            // Only sent to clients that do not ask for raw records, which this one does.
            Some(Kind::Packets(_)) => bail!(
                "pcapd sent packets as a PacketBatch although this pcap asked for savefile \
                 records; it cannot write them (compare `pcap version` with the daemon's)"
            ),
            Some(Kind::Records(batch)) => {
                let (bytes, count) = match remaining {
                    Some(n) if n < u64::from(batch.count) => {
                        (first_records(&batch.records, n, snaplen)?, n)
                    }
                    _ => (&batch.records[..], u64::from(batch.count)),
                };
                if out.records(bytes)? == Flow::ReaderGone {
                    return Ok(());
                }
                progress.add(count, bytes.len() as u64);
                if let Some(n) = remaining.as_mut() {
                    *n -= count;
                    if *n == 0 {
                        break;
                    }
                }
            }
            Some(Kind::Notice(n)) => {
                progress.interrupt();
                notices.tell(n);
            }
            // A repeated header or a kind newer than this pcap: nothing to write.
            Some(Kind::Header(_)) | None => {}
        }
    }
    out.finish()?;
    progress.finish();
    Ok(())
}

/// The first `n` whole records of a record batch.
fn first_records(records: &[u8], n: u64, snaplen: u32) -> Result<&[u8]> {
    let mut it = savefile::Records::new(records, snaplen);
    for _ in 0..n {
        if it.next().is_none() {
            bail!("pcapd sent a record batch that does not hold whole savefile records");
        }
    }
    Ok(&records[..it.consumed()])
}

/// Tells a stream's in-band notices on stderr, where they do not mix with the output:
/// "pcap: cw is RETRYING: container web (docker) is not running".
pub(crate) struct Notices {
    /// The capture as the user named it: its alias, or "capture 3".
    name: String,
    /// Whether a state other than ACTIVE was told, so that a return to ACTIVE is told too.
    told_inactive: bool,
}

impl Notices {
    /// Notices of capture `id`, named as `selector` names it.
    pub(crate) fn new(selector: &Selector, id: u64) -> Self {
        let name = match selector {
            Selector::Alias(alias) => alias.to_string(),
            Selector::Id(_) | Selector::All => format!("capture {id}"),
        };
        Notices {
            name,
            told_inactive: false,
        }
    }

    /// Prints the notice's line, if it has one.
    pub(crate) fn tell(&mut self, n: api::Notice) {
        if let Some(line) = self.line(n) {
            eprintln!("{line}");
        }
    }

    fn line(&mut self, n: api::Notice) -> Option<String> {
        match n.kind? {
            notice::Kind::Gap(gap) => Some(format!(
                "pcap: {} packets skipped: this reader fell behind",
                gap.dropped
            )),
            notice::Kind::State(change) => {
                let name = &self.name;
                let state = State::try_from(change.state).ok()?;
                if state == State::Active {
                    let was_inactive = std::mem::take(&mut self.told_inactive);
                    return was_inactive.then(|| format!("pcap: {name} is ACTIVE again"));
                }
                self.told_inactive = true;
                let reason = change.reason.trim();
                Some(match reason {
                    "" => format!("pcap: {name} is {state}"),
                    _ => format!("pcap: {name} is {state}: {reason}"),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_core::domain::Alias;

    fn state(s: api::State, reason: &str) -> api::Notice {
        let change = api::StateChange {
            state: s.into(),
            reason: reason.into(),
        };
        api::Notice {
            kind: Some(notice::Kind::State(change)),
        }
    }

    #[test]
    fn notices_name_the_capture_as_the_user_did() {
        let mut n = Notices::new(&Selector::Alias(Alias::new("cw").unwrap()), 3);
        let reason = "container web (docker) is not running";
        assert_eq!(
            n.line(state(api::State::Retrying, reason)).unwrap(),
            "pcap: cw is RETRYING: container web (docker) is not running"
        );
        assert_eq!(
            n.line(state(api::State::Active, "")).unwrap(),
            "pcap: cw is ACTIVE again"
        );
    }

    #[test]
    fn notices_read_well() {
        let mut n = Notices::new(&Selector::Id(3), 3);
        let gap = api::Notice {
            kind: Some(notice::Kind::Gap(api::Gap { dropped: 42 })),
        };
        assert_eq!(
            n.line(gap).unwrap(),
            "pcap: 42 packets skipped: this reader fell behind"
        );
        assert_eq!(n.line(state(api::State::Active, "")), None);
        assert_eq!(
            n.line(state(api::State::Retrying, "interface eth1 is down"))
                .unwrap(),
            "pcap: capture 3 is RETRYING: interface eth1 is down"
        );
        assert_eq!(
            n.line(state(api::State::Active, "")).unwrap(),
            "pcap: capture 3 is ACTIVE again"
        );
        assert_eq!(
            n.line(state(api::State::Finished, "")).unwrap(),
            "pcap: capture 3 is FINISHED"
        );
    }
}
