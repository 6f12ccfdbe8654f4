//! The commands of `pcap`, one module per group, and what they share.

mod decode;
mod docs;
mod extcap;
mod ifaces;
mod import;
mod init;
mod list;
mod manage;
mod netns;
mod notices;
mod pump;
mod remote;
mod stream;
mod version;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use pcap_core::api::v1 as api;
use pcap_core::domain::CaptureInfo;

use crate::target::Targets;

/// What every command gets from the global options.
#[derive(Debug, Clone)]
pub struct Context {
    /// `--json`: print JSON for scripts instead of text for people.
    pub json: bool,
    /// Where targets and selectors lead.
    pub targets: Targets,
    /// The whole command line, for completions and the manual page.
    pub cli: fn() -> clap::Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Define a capture on an interface with a BPF filter (or add aliases to the existing
    /// capture of the same interface and filter); prints its id
    Init(init::InitArgs),
    /// Start or resume captures
    #[command(override_usage = "pcap start [OPTIONS] <[REMOTE:]ID|ALIAS | --all [REMOTE:]>")]
    Start(manage::StartArgs),
    /// Pause captures, keeping what they spooled
    #[command(override_usage = "pcap stop [OPTIONS] <[REMOTE:]ID|ALIAS | --all [REMOTE:]>")]
    Stop(manage::SelectArgs),
    /// Remove captures and their spool
    #[command(override_usage = "pcap delete [OPTIONS] <[REMOTE:]ID|ALIAS | --all [REMOTE:]>")]
    Delete(manage::SelectArgs),
    /// Show every capture with its state and counters
    List(RemoteArg),
    /// Write what a capture spooled as a pcap savefile (with --live, then new packets too)
    Replay(stream::ReplayArgs),
    /// Write new packets of a capture as a pcap savefile as they are captured
    Listen(stream::ListenArgs),
    /// Show the HTTP requests and DNS queries of a capture (or of a pcap/pcapng file) with
    /// their responses: a table, or JSON lines with --json
    #[command(
        override_usage = "pcap decode [OPTIONS] <[REMOTE:]ID|ALIAS>\n       pcap decode [OPTIONS] --file <FILE|->"
    )]
    Decode(decode::DecodeArgs),
    /// Make a pcap or pcapng file (or standard input) a capture of pcapd, FINISHED, to be
    /// replayed and decoded like any other; prints its id
    Import(import::ImportArgs),
    /// Show the network interfaces pcapd can capture on (in its own network namespace, or
    /// in another one)
    Ifaces(ifaces::IfacesArgs),
    /// Show every network namespace on the host: inode, names, processes, interfaces
    Netns(RemoteArg),
    /// Name remote daemons, to be used as `NAME:` before captures and interfaces
    #[command(subcommand)]
    Remote(remote::RemoteCommand),
    /// Show the versions of pcap and of the daemon
    Version(RemoteArg),
    /// Print a completion script: `pcap completions bash > /etc/bash_completion.d/pcap`
    Completions(docs::CompletionsArgs),
    /// Wireshark's extcap protocol: pcapd's captures in Wireshark's interface list
    /// (`pcap extcap install` puts it where Wireshark looks)
    Extcap(extcap::ExtcapArgs),
    /// Print the manual page (roff), or write a page per command with --dir
    #[command(hide = true)]
    Man(docs::ManArgs),
}

/// The optional daemon of commands that take no capture.
#[derive(Debug, Args)]
pub struct RemoteArg {
    /// A remote from `pcap remote list`, followed by a colon (`lab:`); the local pcapd if
    /// left out
    #[arg(value_name = "REMOTE:")]
    remote: Option<String>,
}

/// Runs one command.
pub async fn run(command: Command, ctx: &Context) -> Result<()> {
    match command {
        Command::Init(args) => init::run(args, ctx).await,
        Command::Start(args) => {
            let stop = args.stop();
            manage::run(manage::Action::Start, args.select, stop, ctx).await
        }
        Command::Stop(args) => manage::run(manage::Action::Stop, args, None, ctx).await,
        Command::Delete(args) => manage::run(manage::Action::Delete, args, None, ctx).await,
        Command::List(args) => list::run(args, ctx).await,
        Command::Replay(args) => stream::replay(args, ctx).await,
        Command::Listen(args) => stream::listen(args, ctx).await,
        Command::Decode(args) => decode::run(args, ctx).await,
        Command::Import(args) => import::run(args, ctx).await,
        Command::Ifaces(args) => ifaces::run(args, ctx).await,
        Command::Remote(command) => remote::run(command, ctx),
        Command::Version(args) => version::run(args, ctx).await,
        Command::Netns(args) => netns::run(args, ctx).await,
        Command::Completions(args) => docs::completions(args, (ctx.cli)()),
        Command::Extcap(args) => extcap::run(args, ctx).await,
        Command::Man(args) => docs::man(args, (ctx.cli)()),
    }
}

/// Reads captures sent by the daemon into domain types.
pub(crate) fn captures(list: Vec<api::Capture>) -> Result<Vec<CaptureInfo>> {
    list.into_iter().map(capture).collect()
}

/// Reads one capture sent by the daemon.
fn capture(c: api::Capture) -> Result<CaptureInfo> {
    let id = c.id;
    CaptureInfo::try_from(c).with_context(|| {
        format!("pcapd sent capture {id} in a form this pcap cannot read (compare `pcap version`)")
    })
}
