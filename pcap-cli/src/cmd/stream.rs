//! `pcap replay` and `pcap listen`: captures' packets as a pcap savefile, or pcapng, written
//! as the streams deliver them, with the streams' notices told on stderr. Several captures
//! are merged in time order into one pcapng stream.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Result};
use clap::Args;
use pcap_core::api::v1::{self as api, notice};
use pcap_core::domain::{ListenSpec, ReplaySpec, Selector, State};
use pcap_core::savefile::Resolution;
use tokio::sync::{mpsc, Notify};

use super::Context;
use crate::merge::{Merge, Step, LIVE_WINDOW};
use crate::output::{Destination, Flow};
use crate::pcapng::Section;
use crate::progress::Progress;
use crate::sink::{self, Format, LaneInfo, PcapSink, PcapngSink, Sink};
use crate::sources::{Event, Request, Source};
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

/// Moves packets from the sources' queues into the sink.
struct Pump {
    sink: Sink,
    progress: Progress,
    notices: Vec<Notices>,
    labels: Vec<String>,
    live: bool,
    /// Packets still to write, when limited.
    left: Option<u64>,
}

impl Pump {
    /// One source: its batches go out whole, in the order they came.
    async fn one(&mut self, mut queue: mpsc::Receiver<Event>) -> Result<Flow> {
        let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
        loop {
            let event = tokio::select! {
                e = queue.recv() => e,
                _ = &mut interrupted => return Ok(Flow::Continue),
            };
            match event {
                Some(Event::Records(b)) => {
                    let (n, bytes, flow) = self.sink.batch(0, &b, self.left)?;
                    if flow == Flow::ReaderGone || self.sink.flush()? == Flow::ReaderGone {
                        return Ok(Flow::ReaderGone);
                    }
                    self.progress.add(n, bytes);
                    if self.count(n) {
                        return Ok(Flow::Continue);
                    }
                }
                Some(Event::Notice(n)) => self.notice(0, n),
                Some(Event::End(None)) | None => return Ok(Flow::Continue),
                Some(Event::End(Some(e))) => {
                    self.sink.flush()?;
                    return Err(anyhow!(e));
                }
            }
        }
    }

    /// Several sources, merged packet by packet.
    async fn merge(
        &mut self,
        mut queues: Vec<mpsc::Receiver<Event>>,
        woken: Arc<Notify>,
        window: Option<std::time::Duration>,
    ) -> Result<Flow> {
        let mut merge = Merge::new(queues.len(), window);
        let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
        loop {
            // Take what the starving lanes have, without waiting.
            let starving: Vec<usize> = merge.starving().collect();
            for lane in starving {
                while let Ok(event) = queues[lane].try_recv() {
                    match event {
                        Event::Records(b) => {
                            merge.feed(lane, b);
                            if merge.starving().all(|l| l != lane) {
                                break;
                            }
                        }
                        Event::Notice(n) => self.notice(lane, n),
                        Event::End(why) => {
                            self.end(lane, why);
                            merge.end(lane);
                            break;
                        }
                    }
                }
            }
            match merge.step(Instant::now()) {
                Step::Write(p) => {
                    let (bytes, flow) = self.sink.packet(&p)?;
                    if flow == Flow::ReaderGone {
                        return Ok(flow);
                    }
                    self.progress.add(1, bytes);
                    if self.count(1) {
                        return self.sink.flush();
                    }
                }
                Step::Done => return self.sink.flush(),
                Step::Wait(until) => {
                    if self.sink.flush()? == Flow::ReaderGone {
                        return Ok(Flow::ReaderGone);
                    }
                    let due = until.map(tokio::time::Instant::from_std);
                    tokio::select! {
                        _ = woken.notified() => {}
                        _ = tokio::time::sleep_until(due.unwrap_or_else(far)), if due.is_some() => {}
                        _ = &mut interrupted => return Ok(Flow::Continue),
                    }
                }
            }
        }
    }

    /// Counts `n` packets written; true once the limit is reached.
    fn count(&mut self, n: u64) -> bool {
        match self.left.as_mut() {
            Some(left) => {
                *left = left.saturating_sub(n);
                *left == 0
            }
            None => false,
        }
    }

    fn notice(&mut self, lane: usize, n: api::Notice) {
        if let Some(notice::Kind::Gap(gap)) = &n.kind {
            self.sink.gap(lane, gap.dropped);
        }
        self.progress.interrupt();
        match self.labels.len() {
            1 => self.notices[lane].tell(n),
            _ => {
                let prefix = format!("{}: ", self.labels[lane]);
                self.notices[lane].tell_with(&prefix, n);
            }
        }
    }

    /// A source of a merge ended: the others go on. An error is told; so is the end of a
    /// live stream, which the others outlive.
    fn end(&mut self, lane: usize, why: Option<String>) {
        let label = &self.labels[lane];
        let why = match why {
            Some(e) => {
                self.progress.interrupt();
                eprintln!("pcap: {label}: {e}; the other captures go on");
                e
            }
            None if self.live => "its stream ended (the capture stopped)".to_owned(),
            None => return,
        };
        self.sink.ended(lane, &why);
    }
}

/// A deadline that is never reached (for a timer that is not armed).
fn far() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365)
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
        self.tell_with("", n);
    }

    /// Prints the notice's line, if it has one, with `prefix` after "pcap: ".
    pub(crate) fn tell_with(&mut self, prefix: &str, n: api::Notice) {
        if let Some(line) = self.line(n) {
            match line.strip_prefix("pcap: ") {
                Some(rest) => eprintln!("pcap: {prefix}{rest}"),
                None => eprintln!("{line}"),
            }
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
