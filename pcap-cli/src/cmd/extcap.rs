//! `pcap extcap`: Wireshark's extcap protocol, so that every capture of the local pcapd and
//! of each configured remote is an interface in Wireshark's own list (`pcapd-web`,
//! `pcapd-lab-db`), and `pcap extcap install`, which puts a small launcher where this
//! Wireshark looks for extcaps (as `tshark -G folders` says).
//!
//! Wireshark runs the extcap with `--extcap-interfaces`, `--extcap-dlts`, `--extcap-config`
//! to fill its lists, and with `--capture --fifo PATH` to capture: pcapng is written to the
//! fifo, a batch at a time, until Wireshark closes it or ends the extcap with SIGTERM.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Subcommand};
use pcap_core::api::v1 as api;
use pcap_core::domain::{CaptureInfo, ReplaySpec, Selector};

use super::Context;
use crate::output::print_stdout;
use crate::target::Endpoint;
use crate::values::{self, Usage};

/// How long a daemon may take to list its captures for Wireshark's interface list: one
/// that does not answer in time contributes no interface rather than hold the list up.
const LIST_WAIT: Duration = Duration::from_secs(3);

/// What every interface value starts with.
const PREFIX: &str = "pcapd-";

/// The launcher's default file name in the extcap folder.
const DEFAULT_NAME: &str = "pcapd";

/// Where the Debian package installs `pcap` (and links its extcap entry to).
const PACKAGED_PCAP: &str = "/usr/bin/pcap";

/// The line that marks a launcher as written by `pcap extcap install`.
const MARK: &str = "# Wireshark extcap of pcapd, written by `pcap extcap install`";

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
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NAME, value_parser = file_name)]
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

/// One capture as a Wireshark interface.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interface {
    /// `pcapd-web`, `pcapd-lab-db`.
    value: String,
    /// As `pcap replay` takes it: `web`, `lab:db`, `3`.
    label: String,
    info: CaptureInfo,
}

/// Every capture of the local daemon and of each remote; a daemon that cannot be reached
/// (or does not answer within [`LIST_WAIT`]) contributes none.
async fn interfaces(ctx: &Context) -> Vec<Interface> {
    let mut endpoints = Vec::new();
    if let Ok(local) = ctx.targets.resolve_remote(None) {
        endpoints.push(local);
    }
    if let Ok(remotes) = ctx.targets.remotes() {
        endpoints.extend(remotes.iter().cloned().map(Endpoint::Remote));
    }
    // Asked all at once: the list waits LIST_WAIT at most, however many are away.
    let mut asked = tokio::task::JoinSet::new();
    for (n, e) in endpoints.iter().enumerate() {
        let (targets, e) = (ctx.targets.clone(), e.clone());
        asked.spawn(async move {
            let listed = tokio::time::timeout(LIST_WAIT, async {
                let mut client = targets.connect(&e).await.ok()?;
                let list = client.list(api::ListRequest {}).await.ok()?.into_inner();
                super::captures(list.captures).ok()
            });
            (n, listed.await.ok().flatten().unwrap_or_default())
        });
    }
    let mut lists = vec![Vec::new(); endpoints.len()];
    while let Some(done) = asked.join_next().await {
        if let Ok((n, list)) = done {
            lists[n] = list;
        }
    }
    let mut out = Vec::new();
    for (endpoint, mut captures) in endpoints.iter().zip(lists) {
        captures.sort_by_key(|c| c.id);
        for c in captures {
            let name = match c.aliases.first() {
                Some(a) => a.to_string(),
                None => c.id.to_string(),
            };
            let (value, label) = match endpoint {
                Endpoint::Unix(_) => (format!("{PREFIX}{name}"), name),
                Endpoint::Remote(r) => (
                    format!("{PREFIX}{}-{name}", r.name),
                    format!("{}:{name}", r.name),
                ),
            };
            out.push(Interface {
                value,
                label,
                info: c,
            });
        }
    }
    out
}

/// The interface Wireshark named.
async fn find(ctx: &Context, value: &str) -> Result<Interface> {
    if !value.starts_with(PREFIX) {
        bail!("{value:?} is not an interface of pcapd: they are named {PREFIX}ALIAS");
    }
    let list = interfaces(ctx).await;
    if let Some(i) = list.iter().find(|i| i.value == value) {
        return Ok(i.clone());
    }
    let known: Vec<&str> = list.iter().map(|i| i.value.as_str()).collect();
    Err(anyhow!(
        "no capture of pcapd is interface {value}: {}",
        match known.is_empty() {
            true => "no daemon listed any capture (is pcapd running? see `pcap list`)".to_owned(),
            false => format!("the interfaces are {}", known.join(", ")),
        }
    ))
}

/// Extcap syntax puts values in braces: a brace in a value would end it early.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '{' => '(',
            '}' => ')',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect()
}

fn render_interfaces(list: &[Interface]) -> String {
    let mut out = format!(
        "extcap {{version={}}}{{help=file:///usr/share/doc/pcapd/README.md}}\n",
        env!("CARGO_PKG_VERSION")
    );
    for i in list {
        let filter = match i.info.filter.trim() {
            "" => "no filter".to_owned(),
            f => f.to_owned(),
        };
        let shown = format!("pcapd: {} ({}, {filter})", i.label, i.info.target);
        let _ = writeln!(
            out,
            "interface {{value={}}}{{display={}}}",
            clean(&i.value),
            clean(&shown)
        );
    }
    out
}

fn render_dlt(link_type: u32) -> String {
    let (name, display) = match link_type {
        0 => ("NULL", "BSD loopback"),
        1 => ("EN10MB", "Ethernet"),
        101 => ("RAW", "Raw IP"),
        113 => ("LINUX_SLL", "Linux cooked capture v1"),
        276 => ("LINUX_SLL2", "Linux cooked capture v2"),
        _ => ("USER", "link type of the capture"),
    };
    let name = match name {
        "USER" => format!("DLT_{link_type}"),
        n => n.to_owned(),
    };
    format!("dlt {{number={link_type}}}{{name={name}}}{{display={display}}}\n")
}

fn render_config() -> String {
    [
        "arg {number=0}{call=--spooled}{display=Spooled packets first}{type=boolflag}\
         {default=false}{tooltip=Start with what the capture spooled, then go on live; \
         otherwise new packets only}",
        "arg {number=1}{call=--since}{display=Spooled since}{type=string}\
         {tooltip=Start with the packets spooled from this time on, then go on live (RFC 3339, \
         unix seconds, or how long ago: 30s, 5m, 2h)}",
        "arg {number=2}{call=--filter}{display=Filter}{type=string}\
         {tooltip=Only packets matching this BPF filter (as tcpdump's)}",
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect()
}

// === install ===

/// Where this Wireshark looks for extcaps, as `tshark -G folders` says.
#[derive(Debug, Default, PartialEq, Eq)]
struct Folders {
    personal: Option<PathBuf>,
    global: Option<PathBuf>,
}

impl Folders {
    fn ask() -> Result<Folders> {
        let out = Command::new("tshark")
            .args(["-G", "folders"])
            .output()
            .map_err(|e| {
                anyhow!(
                    "cannot run `tshark -G folders` to learn where Wireshark looks for \
                     extcaps: {e}; install tshark (apt install tshark)"
                )
            })?;
        if !out.status.success() {
            bail!(
                "`tshark -G folders` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let folders = Folders::parse(&String::from_utf8_lossy(&out.stdout));
        if folders.personal.is_none() && folders.global.is_none() {
            bail!(
                "`tshark -G folders` named no extcap folder: is this Wireshark built with extcap?"
            );
        }
        Ok(folders)
    }

    /// Reads "Extcap path:" (older versions: the global folder only), "Personal Extcap
    /// path:" and "Global Extcap path:" lines.
    fn parse(text: &str) -> Folders {
        let mut f = Folders::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match key.trim().to_ascii_lowercase().as_str() {
                "personal extcap path" => f.personal = Some(value.into()),
                "global extcap path" | "extcap path" => f.global = Some(value.into()),
                _ => {}
            }
        }
        f
    }

    /// The folder `system` asks for, or why there is none.
    fn choose(&self, system: bool) -> Result<&Path> {
        match (system, &self.personal, &self.global) {
            (true, _, Some(g)) => Ok(g),
            (true, _, None) => bail!("this Wireshark names no global extcap folder"),
            (false, Some(p), _) => Ok(p),
            (false, None, g) => bail!(
                "this Wireshark reads extcaps only from its global folder{}, not from a \
                 personal one: install there with `sudo pcap extcap install --system`",
                g.as_ref()
                    .map(|g| format!(" ({})", g.display()))
                    .unwrap_or_default()
            ),
        }
    }
}

/// The launcher: runs this `pcap` as `pcap extcap`, on the daemon this user reaches.
fn launcher(pcap: &Path, socket: &Path, config_home: Option<&Path>) -> String {
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let mut s = format!("#!/bin/sh\n{MARK}; remove it with `pcap extcap uninstall`.\n");
    let _ = writeln!(s, "PCAP_SOCKET={}\nexport PCAP_SOCKET", quote(socket));
    if let Some(c) = config_home {
        let _ = writeln!(s, "XDG_CONFIG_HOME={}\nexport XDG_CONFIG_HOME", quote(c));
    }
    let _ = writeln!(s, "exec {} extcap \"$@\"", quote(pcap));
    s
}

fn install(args: &InstallArgs, ctx: &Context) -> Result<()> {
    let folders = Folders::ask()?;
    let dir = folders.choose(args.system)?;
    let path = dir.join(&args.name);
    match Existing::at(&path)? {
        Existing::Nothing | Existing::Launcher => {}
        Existing::Link(to) if is_pcap(&to) => bail!(
            "{} is already a link to {}{}: Wireshark runs `pcap extcap` through it, so there \
             is nothing to install (give --name NAME for a launcher of another pcap beside it)",
            path.display(),
            to.display(),
            package_note(&path)
        ),
        Existing::Link(to) => bail!(
            "{} is a link to {}, not a launcher written by pcap: remove it, or give another \
             --name",
            path.display(),
            to.display()
        ),
        Existing::Other => bail!(
            "{} exists and was not written by pcap: remove it, or give another --name",
            path.display()
        ),
    }
    let pcap = std::env::current_exe().context("cannot find the path of this pcap")?;
    let socket = match ctx.targets.resolve_remote(None)? {
        Endpoint::Unix(s) => s,
        Endpoint::Remote(_) => unreachable!("the local daemon is a socket"),
    };
    // A personal launcher keeps this user's remotes file; a global one leaves each user's.
    let config_home = match args.system {
        true => None,
        false => std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
    };
    let text = launcher(&pcap, &socket, config_home.as_deref());
    let denied = |e: std::io::Error| {
        let hint = match (e.kind(), args.system) {
            (std::io::ErrorKind::PermissionDenied, true) => {
                ": the global folder needs root (sudo pcap extcap install --system)"
            }
            _ => "",
        };
        anyhow!("cannot write {}: {e}{hint}", path.display())
    };
    std::fs::create_dir_all(dir).map_err(denied)?;
    let tmp = dir.join(format!(".{}.tmp", args.name));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(denied(e));
    }
    eprintln!(
        "installed {}: restart Wireshark, and pcapd's captures are in its interface list \
         as pcapd-ALIAS (`tshark -D` lists them)",
        path.display()
    );
    Ok(())
}

fn uninstall(args: &InstallArgs) -> Result<()> {
    let folders = Folders::ask()?;
    let dir = match (args.system, &folders.personal, &folders.global) {
        (false, None, Some(g)) => {
            bail!(
                "this Wireshark has no personal extcap folder, so nothing was installed there; \
                 give --system to remove the launcher from {}",
                g.display()
            )
        }
        _ => folders.choose(args.system)?,
    };
    let path = dir.join(&args.name);
    match Existing::at(&path)? {
        Existing::Launcher => {}
        Existing::Link(to) => {
            let note = package_note(&path);
            bail!(
                "{} is a link to {}{note}, not a launcher written by `pcap extcap install`: \
                 left as it is{}",
                path.display(),
                to.display(),
                match note.is_empty() {
                    false => "; it goes when the package is removed (apt remove pcapd)",
                    true => "",
                }
            )
        }
        Existing::Other => bail!(
            "{} was not written by `pcap extcap install`: left as it is",
            path.display()
        ),
        Existing::Nothing => bail!("{} is not installed: nothing to remove", path.display()),
    }
    std::fs::remove_file(&path).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => ": the global folder needs root (sudo)",
            _ => "",
        };
        anyhow!("cannot remove {}: {e}{hint}", path.display())
    })?;
    eprintln!("removed {}", path.display());
    Ok(())
}

/// What is at a launcher's path before `install` or `uninstall` changes it.
#[derive(Debug, PartialEq, Eq)]
enum Existing {
    Nothing,
    /// A launcher that `pcap extcap install` wrote: its to replace or remove.
    Launcher,
    /// A symbolic link (not followed), such as the Debian package's link to /usr/bin/pcap.
    Link(PathBuf),
    /// Any other file: left alone.
    Other,
}

impl Existing {
    fn at(path: &Path) -> Result<Existing> {
        use std::io::Read as _;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Nothing),
            Err(e) => bail!("cannot look at {}: {e}", path.display()),
        };
        if meta.file_type().is_symlink() {
            let to = std::fs::read_link(path)
                .map_err(|e| anyhow!("cannot read the link {}: {e}", path.display()))?;
            return Ok(Existing::Link(to));
        }
        if !meta.is_file() {
            return Ok(Existing::Other);
        }
        // The mark is on the launcher's second line; a program there can be big.
        let mut head = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(4096).read_to_end(&mut head))
            .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
        Ok(match String::from_utf8_lossy(&head).contains(MARK) {
            true => Existing::Launcher,
            false => Existing::Other,
        })
    }
}

/// Whether a link leads to a `pcap` binary (which, run under the link's name with
/// Wireshark's arguments, is `pcap extcap`).
fn is_pcap(to: &Path) -> bool {
    to.file_name().is_some_and(|n| n == "pcap")
}

/// Says where a link that leads to /usr/bin/pcap comes from.
fn package_note(link: &Path) -> &'static str {
    let packaged = std::fs::canonicalize(link)
        .is_ok_and(|p| std::fs::canonicalize(PACKAGED_PCAP).is_ok_and(|q| p == q));
    match packaged {
        true => " (as the pcapd package installs it)",
        false => "",
    }
}

/// `--name`: a file name, nothing that leads out of the folder.
fn file_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    match ok {
        true => Ok(s.to_owned()),
        false => Err(format!(
            "{s:?} is not a file name for the launcher: letters, digits, '-', '_' and '.', \
             at most 64, not starting with '.'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_old_and_new_wiresharks() {
        let old =
            "Temp:\t/tmp\nExtcap path:         \t/usr/lib/x86_64-linux-gnu/wireshark/extcap\n";
        let f = Folders::parse(old);
        assert_eq!(f.personal, None);
        assert_eq!(
            f.global.as_deref(),
            Some(Path::new("/usr/lib/x86_64-linux-gnu/wireshark/extcap"))
        );
        let e = f.choose(false).unwrap_err().to_string();
        assert!(e.contains("--system"), "{e}");
        let new = "Personal Extcap path:\t/home/u/.local/lib/wireshark/extcap\n\
                   Global Extcap path:\t/usr/lib/wireshark/extcap\n";
        let f = Folders::parse(new);
        assert_eq!(
            f.choose(false).unwrap(),
            Path::new("/home/u/.local/lib/wireshark/extcap")
        );
        assert_eq!(
            f.choose(true).unwrap(),
            Path::new("/usr/lib/wireshark/extcap")
        );
    }

    #[test]
    fn launcher_quotes_paths() {
        let s = launcher(Path::new("/opt/it's/pcap"), Path::new("/run/p.sock"), None);
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(MARK));
        assert!(s.contains("PCAP_SOCKET='/run/p.sock'"));
        assert!(s.contains(r#"exec '/opt/it'\''s/pcap' extcap "$@""#), "{s}");
    }

    #[test]
    fn dlts_and_config_follow_the_syntax() {
        assert_eq!(
            render_dlt(276),
            "dlt {number=276}{name=LINUX_SLL2}{display=Linux cooked capture v2}\n"
        );
        assert!(render_dlt(147).contains("{name=DLT_147}"));
        let config = render_config();
        assert_eq!(config.lines().count(), 3);
        assert!(config.contains("{call=--spooled}") && config.contains("{type=boolflag}"));
    }

    #[test]
    fn links_and_foreign_files_are_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| Existing::at(&dir.path().join(name)).unwrap();
        assert_eq!(at("absent"), Existing::Nothing);
        std::fs::write(
            dir.path().join("ours"),
            launcher(Path::new("/usr/bin/pcap"), Path::new("/run/s"), None),
        )
        .unwrap();
        assert_eq!(at("ours"), Existing::Launcher);
        std::fs::write(dir.path().join("other"), b"\x7fELF\x02\x01\x01\0\xff\xfe").unwrap();
        assert_eq!(at("other"), Existing::Other);
        // A link is judged by itself, not by the launcher or program it leads to.
        let link = dir.path().join("pcapd");
        std::os::unix::fs::symlink("no-such-dir/pcap", &link).unwrap();
        assert_eq!(at("pcapd"), Existing::Link("no-such-dir/pcap".into()));
        std::os::unix::fs::symlink(dir.path().join("ours"), dir.path().join("to-ours")).unwrap();
        assert!(matches!(at("to-ours"), Existing::Link(_)));
        assert!(is_pcap(Path::new("/usr/bin/pcap")));
        assert!(!is_pcap(Path::new("/usr/bin/pcapd")));
        assert!(package_note(&link).is_empty(), "leads nowhere here");
    }

    #[test]
    fn names_stay_in_the_folder() {
        assert!(file_name("pcapd-test-12").is_ok());
        assert!(file_name("../x").is_err());
        assert!(file_name(".hidden").is_err());
        assert!(file_name("").is_err());
    }
}
