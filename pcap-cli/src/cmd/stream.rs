//! `pcap replay` and `pcap listen`: captures' packets as a pcap savefile, or pcapng, written
//! as the streams deliver them, with the streams' notices told on stderr. Several captures
//! are merged in time order into one pcapng stream.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use pcap_core::api::v1 as api;
use pcap_core::domain::{ListenSpec, ReplaySpec, Selector};
use pcap_core::savefile::Resolution;
use tokio::sync::Notify;

use super::notices::Notices;
use super::pump::Pump;
use super::Context;
use crate::merge::LIVE_WINDOW;
use crate::output::{Destination, Flow};
use crate::pcapng::Section;
use crate::progress::Progress;
use crate::sink::{self, Format, LaneInfo, PcapSink, PcapngSink, Sink};
use crate::sources::{Request, Source};
use crate::values::{self, Usage};

/// Arguments of `pcap replay`.
#[derive(Debug, Args)]
#[command(after_help = REPLAY_HANDOFF_HELP)]
pub struct ReplayArgs {
    /// Capture id or alias, after `REMOTE:` for a remote daemon (`lab:web`); several are
    /// merged in exact time order into one pcapng stream
    #[arg(value_name = "[REMOTE:]ID|ALIAS", required = true)]
    captures: Vec<String>,
    /// After what is spooled, go on with new packets until the capture stops (several
    /// captures: new packets merged within a 200 ms window, as `pcap listen` does)
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
    /// Only packets matching this BPF filter (in every capture given)
    #[arg(long, value_name = "BPF")]
    filter: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

/// Arguments of `pcap listen`.
#[derive(Debug, Args)]
#[command(after_help = LISTEN_MERGE_HELP)]
pub struct ListenArgs {
    /// Capture id or alias, after `REMOTE:` for a remote daemon (`lab:web`); several are
    /// merged into one pcapng stream (see below)
    #[arg(value_name = "[REMOTE:]ID|ALIAS", required = true)]
    captures: Vec<String>,
    /// End after this many packets (at most 10^12; of all captures together)
    #[arg(long, value_name = "N", value_parser = values::count)]
    count: Option<u64>,
    #[command(flatten)]
    output: OutputArgs,
}

const REPLAY_HANDOFF_HELP: &str = "\
A replay of a capture of the local pcapd, without --live or --filter, reads the capture's
segment files itself: pcapd hands them over (read-only, to the same user) instead of
streaming every packet, which is several times faster. Where pcap cannot reach pcapd's
handoff socket (another network namespace), or with PCAP_NO_HANDOFF=1 in the environment,
the packets are streamed instead; the output is the same.";

const LISTEN_MERGE_HELP: &str = "\
Several captures are merged in time order with a reorder window of 200 ms: a packet is held
at most 200 ms after it arrives, so that older packets of the other captures, which may take
longer to arrive (a remote over TLS, a busy daemon), still come out before it. Packets that
arrive later than that come out as they arrive. Clocks of different hosts are compared as
they are: keep them in sync.";

/// Where and how the packets are written.
#[derive(Debug, Args)]
struct OutputArgs {
    /// Write to FILE instead of standard output
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: Option<PathBuf>,
    /// pcap (tcpdump's savefile; the default for one capture) or pcapng (interfaces named,
    /// filters, comments, statistics, nanoseconds; always for several captures)
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<Format>,
    /// Write pcap with nanosecond timestamps (magic a1b23c4d) instead of microseconds;
    /// pcapng always has nanoseconds
    #[arg(long)]
    nano: bool,
}

impl OutputArgs {
    fn format(&self, captures: usize) -> Result<Format> {
        match (self.format, captures) {
            (Some(Format::Pcap), n) if n > 1 => Err(Usage(format!(
                "--format pcap holds one capture, and {n} were given: leave --format out or \
                 give --format pcapng to merge them"
            ))
            .into()),
            (Some(f), _) => Ok(f),
            (None, 1) => Ok(Format::Pcap),
            (None, _) => Ok(Format::Pcapng),
        }
    }
}

/// Runs `pcap replay`.
pub async fn replay(args: ReplayArgs, ctx: &Context) -> Result<()> {
    let dest = Destination::choose(args.output.write.as_deref())?;
    let format = args.output.format(args.captures.len())?;
    let spec = ReplaySpec {
        selector: Selector::All,
        live: args.live,
        since_unix_ns: args.since,
        until_unix_ns: args.until,
        filter: args.filter.clone().unwrap_or_default().trim().to_owned(),
        raw_records: true,
        // A microsecond pcap file: the daemon converts the spooled records as it reads
        // them, which saves this program a copy of every batch.
        microseconds: format == Format::Pcap && !args.output.nano,
        // Local captures' segment files read here rather than streamed (see handoff.rs).
        segment_handoff: !args.live && args.filter.is_none() && crate::handoff::wanted(),
    };
    let checked = ReplaySpec {
        selector: Selector::Id(1),
        ..spec.clone()
    };
    ReplaySpec::try_from(api::ReplayRequest::from(&checked)).map_err(Usage::from)?;
    let run = Run {
        request: Request::Replay(spec),
        command: "replay",
        format,
        nano: args.output.nano,
        limit: None,
        // Spools are merged in exact order; live packets after them within the window.
        window: args.live.then_some(LIVE_WINDOW),
        live: args.live,
        quiet: false,
    };
    run.go(&args.captures, &dest, ctx).await
}

/// Runs `pcap listen`.
pub async fn listen(args: ListenArgs, ctx: &Context) -> Result<()> {
    let dest = Destination::choose(args.output.write.as_deref())?;
    let format = args.output.format(args.captures.len())?;
    let spec = ListenSpec {
        selector: Selector::All,
        count: args.count,
        raw_records: true,
    };
    let run = Run {
        request: Request::Listen(spec),
        command: "listen",
        format,
        nano: args.output.nano,
        limit: args.count,
        window: Some(LIVE_WINDOW),
        live: true,
        quiet: false,
    };
    run.go(&args.captures, &dest, ctx).await
}

/// `pcap extcap --capture`: capture `label` (`web`, `lab:db`) replayed as `spec` says, as
/// pcapng into Wireshark's fifo, flushed batch by batch, with no progress on stderr.
pub(crate) async fn extcap_capture(
    label: &str,
    spec: ReplaySpec,
    fifo: PathBuf,
    ctx: &Context,
) -> Result<()> {
    let run = Run {
        request: Request::Replay(spec),
        command: "extcap",
        format: Format::Pcapng,
        nano: false,
        limit: None,
        window: Some(LIVE_WINDOW),
        live: true,
        quiet: true,
    };
    run.go(&[label.to_owned()], &Destination::File(fifo), ctx)
        .await
}

/// One `replay` or `listen` as asked.
struct Run {
    request: Request,
    command: &'static str,
    format: Format,
    nano: bool,
    /// Packets to write at most, of all sources together.
    limit: Option<u64>,
    /// How long a merge may hold a packet; `None`: exact order.
    window: Option<std::time::Duration>,
    /// Whether sources may end while others go on (live streams).
    live: bool,
    /// No progress on stderr, whatever the destination.
    quiet: bool,
}

impl Run {
    async fn go(self, labels: &[String], dest: &Destination, ctx: &Context) -> Result<()> {
        let mut sources = Vec::with_capacity(labels.len());
        for label in labels {
            let opened = async {
                let (endpoint, name) = ctx.targets.resolve(label)?;
                let selector = super::manage::selector(false, name)?;
                Source::open(&ctx.targets, label, (endpoint, selector), &self.request).await
            };
            sources.push(match (opened.await, labels.len()) {
                (Ok(s), _) => s,
                (Err(e), 1) => return Err(e),
                (Err(e), _) => return Err(e.context(format!("cannot read capture {label}"))),
            });
        }
        let mut lanes = Vec::with_capacity(sources.len());
        for s in &sources {
            let info = match self.format {
                Format::Pcapng => s.info(&ctx.targets).await,
                Format::Pcap => None,
            };
            lanes.push(LaneInfo {
                label: s.label.clone(),
                endpoint: s.endpoint.clone(),
                selector: s.selector.clone(),
                capture_id: s.header.capture_id,
                link_type: s.header.link_type,
                snaplen: match s.header.snaplen {
                    0 => pcap_core::DEFAULT_SNAPLEN,
                    n => n,
                },
                info,
            });
        }
        let progress = match dest {
            _ if self.quiet => Progress::silent(),
            Destination::File(path) => Progress::on_stderr(&path.display().to_string()),
            Destination::Stdout => Progress::silent(),
        };
        let sink = match self.format {
            Format::Pcap => {
                let resolution = Resolution::nano_if(self.nano);
                PcapSink::start(dest.open()?, &lanes[0], resolution)?.map(Sink::Pcap)
            }
            Format::Pcapng => {
                let section = self.section(&sources, &lanes, ctx).await;
                let (out, name) = dest.open_buffered()?;
                PcapngSink::start(out, name, &section, &lanes)?.map(|s| Sink::Pcapng(Box::new(s)))
            }
        };
        let Some(mut sink) = sink else {
            return Ok(());
        };
        if sink.flush()? == Flow::ReaderGone {
            return Ok(());
        }
        let woken = Arc::new(Notify::new());
        let queues: Vec<_> = sources.iter_mut().map(|s| s.spawn(woken.clone())).collect();
        let notices = sources
            .iter()
            .map(|s| Notices::new(&s.selector, s.header.capture_id))
            .collect();
        let mut pump = Pump {
            sink,
            progress,
            notices,
            labels: labels.to_vec(),
            live: self.live,
            left: self.limit,
        };
        let flow = if queues.len() == 1 {
            pump.one(queues.into_iter().next().expect("one queue"))
                .await?
        } else {
            pump.merge(queues, woken, self.window).await?
        };
        if flow == Flow::ReaderGone {
            return Ok(());
        }
        let Pump {
            sink, mut progress, ..
        } = pump;
        let infos = match sink {
            Sink::Pcapng(_) => final_infos(&sources, ctx).await,
            Sink::Pcap(_) => Vec::new(),
        };
        let now = pcap_core::parse::unix_ns(std::time::SystemTime::now());
        if sink.finish(infos, now)? == Flow::Continue {
            progress.interrupt();
            progress.finish();
        }
        Ok(())
    }

    /// The section header: the system, the daemons' versions, and a comment naming the
    /// host and the captures.
    async fn section(&self, sources: &[Source], lanes: &[LaneInfo], ctx: &Context) -> Section {
        let mut daemons: Vec<String> = Vec::new();
        for s in sources {
            if let Some(v) = s.daemon(&ctx.targets).await {
                let prefix = s.endpoint.prefix();
                let named = if daemons.is_empty() || prefix.is_empty() {
                    v
                } else {
                    format!("{prefix} {v}")
                };
                if !daemons.contains(&named) {
                    daemons.push(named);
                }
            }
        }
        let application = match daemons.is_empty() {
            true => format!("pcap {}", env!("CARGO_PKG_VERSION")),
            false => daemons.join(", "),
        };
        let captures: Vec<String> = lanes
            .iter()
            .map(|l| {
                let whose = match &l.endpoint {
                    crate::target::Endpoint::Unix(_) => String::new(),
                    crate::target::Endpoint::Remote(r) => format!(" on {} ({})", r.name, r.url),
                };
                let aliases = l
                    .info
                    .as_ref()
                    .map(|c| c.aliases.iter().map(|a| a.to_string()).collect::<Vec<_>>())
                    .unwrap_or_default();
                match aliases.is_empty() {
                    true => format!("capture {}{whose}", l.capture_id),
                    false => format!("capture {} ({}){whose}", l.capture_id, aliases.join(", ")),
                }
            })
            .collect();
        Section {
            os: sink::os_name(),
            application,
            comment: format!(
                "pcap {} on host {}: {}",
                self.command,
                sink::host_name(),
                captures.join("; ")
            ),
        }
    }
}

/// The captures' counters at the end, for the statistics blocks; a daemon that does not
/// answer within a few seconds is left out rather than waited for.
async fn final_infos(
    sources: &[Source],
    ctx: &Context,
) -> Vec<Option<pcap_core::domain::CaptureInfo>> {
    let mut infos = Vec::with_capacity(sources.len());
    for s in sources {
        let info = tokio::time::timeout(std::time::Duration::from_secs(3), s.info(&ctx.targets));
        infos.push(info.await.ok().flatten());
    }
    infos
}
