//! `pcap extcap`: Wireshark's extcap protocol, so that every capture of the local pcapd and
//! of each configured remote is an interface in Wireshark's own list (`pcapd-web`,
//! `pcapd-lab-db`), and `pcap extcap install`, which puts a small launcher where this
//! Wireshark looks for extcaps (as `tshark -G folders` says).
//!
//! Wireshark runs the extcap with `--extcap-interfaces`, `--extcap-dlts`, `--extcap-config`
//! to fill its lists, and with `--capture --fifo PATH` to capture: pcapng is written to the
//! fifo, a batch at a time, until Wireshark closes it or ends the extcap with SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use pcap_core::api::v1 as api;
use pcap_core::domain::{ReplaySpec, Selector};

use super::Context;
use crate::output::print_stdout;
use crate::values::{self, Usage};

mod install;
mod interfaces;

use install::{install, uninstall, DEFAULT_NAME};
use interfaces::{find, interfaces, render_config, render_dlt, render_interfaces};

/// How long a daemon may take to list its captures for Wireshark's interface list: one
/// that does not answer in time contributes no interface rather than hold the list up.
pub(super) const LIST_WAIT: Duration = Duration::from_secs(3);

/// What every interface value starts with.
pub(super) const PREFIX: &str = "pcapd-";
/// Arguments of `pcap extcap`: Wireshark's, or a subcommand.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExtcapArgs {
    #[command(subcommand)]
    action: Option<ExtcapAction>,
    /// List the interfaces: one per capture of the local pcapd and of each remote
    #[arg(long)]
    extcap_interfaces: bool,
    /// Wireshark's version (accepted, not needed)
    #[arg(long, value_name = "VERSION", num_args = 0..=1, default_missing_value = "")]
    extcap_version: Option<String>,
    /// The interface asked about or captured from (`pcapd-web`, `pcapd-lab-db`)
    #[arg(long, value_name = "NAME")]
    extcap_interface: Option<String>,
    /// List the interface's link type
    #[arg(long)]
    extcap_dlts: bool,
    /// List the options of a capture
    #[arg(long)]
    extcap_config: bool,
    /// Capture: write pcapng to --fifo
    #[arg(long)]
    capture: bool,
    /// Where Wireshark reads the capture from
    #[arg(long, value_name = "PATH")]
    fifo: Option<PathBuf>,
    /// Wireshark's capture filter (BPF)
    #[arg(long, value_name = "BPF")]
    extcap_capture_filter: Option<String>,
    /// Start with what the capture spooled, then go on live (otherwise: new packets only)
    #[arg(long)]
    spooled: bool,
    /// Start with the packets spooled from T on, then go on live (RFC 3339, unix seconds,
    /// or how long ago: 30s, 5m, 2h)
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Only packets matching this BPF filter
    #[arg(long, value_name = "BPF")]
    filter: Option<String>,
    /// Wireshark's debugging options (accepted, ignored)
    #[arg(long, hide = true)]
    debug: bool,
    #[arg(long, hide = true, value_name = "PATH")]
    debug_file: Option<PathBuf>,
    /// Other arguments of the extcap protocol that this extcap does not use (it has no
    /// controls and no options to reload); accepted so that no Wireshark version trips
    /// over them.
    #[arg(long, hide = true, value_name = "PATH")]
    extcap_control_in: Option<PathBuf>,
    #[arg(long, hide = true, value_name = "PATH")]
    extcap_control_out: Option<PathBuf>,
    #[arg(long, hide = true, value_name = "OPTION")]
    extcap_reload_option: Option<String>,
    #[arg(long, hide = true)]
    extcap_cleanup_postkill: bool,
}

/// `pcap extcap install` and `uninstall`.
#[derive(Debug, Subcommand)]
enum ExtcapAction {
    /// Put a launcher of `pcap extcap` where this Wireshark looks for extcaps, so that
    /// pcapd's captures appear in its interface list
    Install(InstallArgs),
    /// Remove what `pcap extcap install` put there
    Uninstall(InstallArgs),
}

#[derive(Debug, Args)]
struct InstallArgs {
    /// Into Wireshark's global extcap folder, for every user (needs root), rather than
    /// your personal one
    #[arg(long)]
    system: bool,
    /// The launcher's file name in the folder
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NAME, value_parser = install::file_name)]
    name: String,
}

/// Runs `pcap extcap`.
pub async fn run(args: ExtcapArgs, ctx: &Context) -> Result<()> {
    match args.action {
        Some(ExtcapAction::Install(a)) => return install(&a, ctx),
        Some(ExtcapAction::Uninstall(a)) => return uninstall(&a),
        None => {}
    }
    if args.extcap_interfaces {
        let list = interfaces(ctx).await;
        return print_stdout(&render_interfaces(&list));
    }
    let Some(value) = args.extcap_interface.as_deref() else {
        return Err(Usage(
            "pcap extcap is run by Wireshark: give --extcap-interfaces, or \
             --extcap-interface NAME with --extcap-dlts, --extcap-config or --capture; \
             `pcap extcap install` makes Wireshark find it"
                .into(),
        )
        .into());
    };
    if args.extcap_config {
        return print_stdout(&render_config());
    }
    let found = find(ctx, value).await?;
    if args.extcap_dlts {
        return print_stdout(&render_dlt(found.info.link_type));
    }
    if !args.capture {
        return Err(Usage(
            "give one of --extcap-dlts, --extcap-config or --capture with --extcap-interface"
                .into(),
        )
        .into());
    }
    let Some(fifo) = args.fifo else {
        return Err(Usage("--capture needs --fifo PATH: where to write the packets".into()).into());
    };
    let since = match args.since.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Some(values::since(s).map_err(Usage)?),
        _ if args.spooled => None,
        // Live only: nothing from before now.
        _ => Some(pcap_core::parse::unix_ns(std::time::SystemTime::now())),
    };
    let filters: Vec<&str> = [
        args.filter.as_deref(),
        args.extcap_capture_filter.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(str::trim)
    .filter(|f| !f.is_empty())
    .collect();
    let filter = match filters.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [a, b] => format!("({a}) and ({b})"),
        _ => unreachable!("two filters at most"),
    };
    let spec = ReplaySpec {
        selector: Selector::All,
        live: true,
        since_unix_ns: since,
        until_unix_ns: None,
        filter,
        raw_records: true,
        microseconds: false,
        segment_handoff: false,
    };
    let checked = ReplaySpec {
        selector: Selector::Id(1),
        ..spec.clone()
    };
    ReplaySpec::try_from(api::ReplayRequest::from(&checked)).map_err(Usage::from)?;
    let fifo_path = fifo.clone();
    let capture = super::stream::extcap_capture(&found.label, spec, fifo, ctx);
    // Wireshark ends a capture by closing the fifo (the next write fails and the capture
    // ends) or with SIGTERM: both are a normal end.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    let gone = reader_gone(fifo_path);
    tokio::select! {
        r = capture => r,
        _ = term.recv() => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = gone => Ok(()),
    }
}

/// Resolves when the reader of `fifo` has opened it and closed it again, even while no
/// packet is written (a write would fail then, but a quiet capture writes nothing): a
/// second, non-blocking write end is opened once there is a reader, and the kernel tells
/// it POLLERR when the last reader closes. The watch is a thread of its own, not waited for
/// at exit.
async fn reader_gone(fifo: PathBuf) {
    use std::os::unix::fs::OpenOptionsExt;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let opened = loop {
            let open = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                .open(&fifo);
            match open {
                Ok(f) => break f,
                // No reader yet (ENXIO): Wireshark opens it as the capture starts.
                Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                // Not a fifo, or not there: the capture's own writes tell what is wrong.
                Err(_) => return,
            }
        };
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(
            opened.as_fd(),
            nix::poll::PollFlags::empty(),
        )];
        loop {
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
                Ok(_) => {
                    let got = fds[0].revents().unwrap_or(nix::poll::PollFlags::empty());
                    if got.intersects(nix::poll::PollFlags::POLLERR | nix::poll::PollFlags::POLLHUP)
                    {
                        let _ = tx.send(());
                        return;
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    });
    if rx.await.is_err() {
        // The watch gave up: never resolve.
        std::future::pending::<()>().await;
    }
}
