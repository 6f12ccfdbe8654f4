//! `pcapd-bench`: measures pcapd on this machine against the tools it replaces and prints
//! the figures as a Markdown table: capture cost beside `tcpdump -w`, replay throughput
//! beside `cat`, listen latency, and the daemon's memory. Run it as root (it makes network
//! namespaces); `bash bench/run.sh` installs what is missing, builds and runs it.
//! `pcapd-bench list-latency` measures one figure on its own: how long `List` takes while
//! other clients start and stop captures. `pcapd-bench decode` measures roundtrip decoding
//! of a generated HTTP/1.1 and DNS file beside tshark (no root needed). `pcapd-bench heavy`,
//! `cpu` and `captures` measure one load figure each (the heavy mix at top speed, CPU per
//! packet at a fixed rate, many ACTIVE captures); the default run ends with all three.
//! `pcapd-bench index` measures what the segment index saves a selective replay of a spool
//! of 2 GB or more.

mod capture;
mod daemon;
mod decode;
mod document;
mod fixed_rate;
mod guard;
mod heavy;
mod http_dns;
mod latency;
mod list_latency;
mod load;
mod load_figures;
mod machine;
mod many_captures;
mod memory;
mod mix;
mod netns;
mod packets;
mod procfs;
mod replay;
mod report;
mod savefile;
mod segment_index;
mod stats;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::daemon::{Bins, Pcapd};
use crate::load_figures::{Figure, LoadOptions};
use crate::netns::Lab;
use crate::packets::Generated;
use crate::report::Run;

/// Measure pcapd against tcpdump and cat in two network namespaces of its own, and print
/// the figures (medians over the runs) with the targets as a Markdown table.
#[derive(Debug, Parser)]
#[command(name = "pcapd-bench", version)]
pub struct Cli {
    /// Packets in the generated file each capture receives
    #[arg(long, default_value_t = 1_000_000)]
    pub packets: u64,
    /// How many times to measure each figure
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub runs: u32,
    /// Seconds of timed packets for the listen latency
    #[arg(long, default_value_t = 3.0)]
    pub latency_secs: f64,
    /// Timed packets per second for the listen latency
    #[arg(long, default_value_t = 1000)]
    pub latency_pps: u64,
    /// Captures defined for the idle memory figure
    #[arg(long, default_value_t = 100)]
    pub captures: u16,
    /// Seconds a reader stays stalled for the memory figure
    #[arg(long, default_value_t = 5.0)]
    pub stall_secs: f64,
    /// Datagrams per second (1000 bytes each) through the capture while the reader stalls
    #[arg(long, default_value_t = 20_000)]
    pub stall_pps: u64,
    /// Packets per second of the fixed-rate load figures (CPU, many captures)
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub pps: u64,
    /// The most ACTIVE captures of the many-captures figure (also measured: 1 and 10)
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub active_captures: u16,
    /// Leave these load figures out of the default run (comma-separated)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FIGURE")]
    pub without: Vec<Figure>,
    /// Also write the table, with the machine's description, to FILE
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Where pcapd and pcap are (default: next to this program)
    #[arg(long, value_name = "DIR", global = true)]
    pub bin_dir: Option<PathBuf>,
    /// Give up (and clean up) after this many seconds
    #[arg(long, default_value_t = 3600, value_name = "SECS", global = true)]
    pub timeout: u64,
    #[command(subcommand)]
    command: Option<Mode>,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Only measure List: its p50/p99/max latency while 2 clients start and stop captures
    /// on lo in a loop (a fresh pcapd on this host; needs root)
    ListLatency {
        /// Captures the two clients start and stop
        #[arg(long, default_value_t = 20)]
        captures: u16,
        /// Seconds to measure
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
    },
    /// Only measure decoding: a generated HTTP/1.1 + DNS savefile decoded by the library,
    /// by `pcap decode --file` and by tshark (packets/s, MB/s, peak RSS); needs no root
    Decode {
        /// Packets in the generated file
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(20..=100_000_000))]
        packets: u64,
        /// Where to write the file (default: a temporary directory, removed afterwards)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Only the heavy mix at top speed: pcapd's default configuration beside
    /// tcpdump -B 32768, kernel drops and packets spooled (needs root)
    Heavy(LoadArgs),
    /// Only CPU per packet at a fixed rate: pcapd beside tcpdump -B 32768 -w FILE (needs
    /// root)
    Cpu(LoadArgs),
    /// Only many ACTIVE captures with different filters at a fixed rate: drops, peak RSS
    /// and CPU per packet at 1, 10 and --captures captures (needs root)
    Captures {
        #[command(flatten)]
        load: LoadArgs,
        /// The most ACTIVE captures
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        captures: u16,
    },
    /// Only measure the segment index: `replay --filter 'host H'` against a full replay of
    /// an imported spool of SIZE MB in 64 MiB segments, H in one segment or none, and
    /// `replay --since` to its first packet (a fresh pcapd on this host; needs root)
    Index {
        /// Megabytes (10^6 bytes) of generated packets imported as the spool
        #[arg(long, default_value_t = 2200, value_parser = clap::value_parser!(u64).range(800..=100_000))]
        size_mb: u64,
        /// Where to put the file and the spool (default: a temporary directory)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Send timestamped UDP to 127.0.0.1:PORT (run by the benchmark inside a namespace)
    #[command(hide = true)]
    SendUdp {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        pps: u64,
        #[arg(long)]
        secs: f64,
        #[arg(long)]
        size: usize,
    },
}

/// Sizes of one load figure run on its own.
#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Packets of the heavy mix each send replays
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    packets: u64,
    /// Packets per second of the fixed-rate figures
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    pps: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Mode::SendUdp {
            port,
            pps,
            secs,
            size,
        }) => latency::send_udp(port, pps, secs, size),
        Some(Mode::ListLatency { captures, secs }) => {
            guard::install(Duration::from_secs(cli.timeout))
                .and_then(|()| list_latency(&cli, captures, secs))
        }
        Some(Mode::Decode { packets, ref dir }) => guard::install(Duration::from_secs(cli.timeout))
            .and_then(|()| decode(&cli, packets, dir.as_deref())),
        Some(Mode::Heavy(ref a)) => guard::install(Duration::from_secs(cli.timeout))
            .and_then(|()| load_only(&cli, a, 100, Figure::Heavy)),
        Some(Mode::Cpu(ref a)) => guard::install(Duration::from_secs(cli.timeout))
            .and_then(|()| load_only(&cli, a, 100, Figure::Cpu)),
        Some(Mode::Captures { ref load, captures }) => {
            guard::install(Duration::from_secs(cli.timeout))
                .and_then(|()| load_only(&cli, load, captures, Figure::Captures))
        }
        Some(Mode::Index { size_mb, ref dir }) => guard::install(Duration::from_secs(cli.timeout))
            .and_then(|()| segment_index(&cli, size_mb, dir.as_deref())),
        None => guard::install(Duration::from_secs(cli.timeout)).and_then(|()| bench(&cli)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcapd-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(cli: &Cli) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("run this as root: it makes network namespaces and captures packets");
    }
    let bins = binaries(cli.bin_dir.as_deref())?;
    let tmp = tempfile::Builder::new()
        .prefix("pcapd-bench.")
        .tempdir()
        .context("make a temporary directory")?;
    guard::register_dir(tmp.path().to_owned());
    // tcpdump writes its file as user tcpdump, below this directory.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    let lab = Lab::create()?;

    let file = tmp.path().join("traffic.pcap");
    eprintln!("generating {} packets in {}", cli.packets, file.display());
    let generated = packets::write_savefile(&file, &lab.endpoints(), cli.packets)?;
    let mut runs = Vec::new();
    for i in 1..=cli.runs {
        let dir = tmp.path().join(format!("run{i}"));
        let run = one_run(cli, &bins, &lab, &file, generated, &dir)
            .with_context(|| format!("run {i}"))?;
        eprintln!("{}", report::run_line(i as usize, &run));
        runs.push(run);
        let _ = std::fs::remove_dir_all(&dir);
    }

    let table = report::table(&runs, cli.captures, cli.latency_pps);
    println!("{table}");

    let figures: Vec<Figure> = [Figure::Heavy, Figure::Cpu, Figure::Captures]
        .into_iter()
        .filter(|f| !cli.without.contains(f))
        .collect();
    let index = if cli.without.contains(&Figure::Index) {
        String::new()
    } else {
        let figures = segment_index::run(&bins, &tmp.path().join("index"), 2200, cli.runs)?;
        let index = segment_index::report(&figures);
        println!("{index}");
        index
    };
    let opts = LoadOptions {
        packets: cli.packets,
        runs: cli.runs,
        pps: cli.pps,
        captures: usize::from(cli.active_captures),
    };
    let load = if figures.is_empty() {
        String::new()
    } else {
        let _ = std::fs::remove_file(&file);
        let load = load_figures::run(&opts, &bins, &lab, tmp.path(), &figures)?;
        println!("{load}");
        load
    };
    if let Some(out) = &cli.out {
        let mut text = document::render(
            cli,
            &bins,
            generated,
            &format!("{table}{load}{index}"),
            &runs,
        );
        if !figures.is_empty() {
            text.push_str("\n## How the load figures are made\n\n");
            text.push_str(&load_figures::describe(&opts));
        }
        if !index.is_empty() {
            text.push_str("\n## How the index figure is made\n\n");
            text.push_str(&segment_index::describe());
        }
        std::fs::write(out, text).with_context(|| format!("write {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// `pcapd-bench heavy`, `cpu` or `captures`: one load figure's table.
fn load_only(cli: &Cli, args: &LoadArgs, captures: u16, figure: Figure) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("run this as root: it makes network namespaces and captures packets");
    }
    let bins = binaries(cli.bin_dir.as_deref())?;
    let tmp = tempfile::Builder::new()
        .prefix("pcapd-bench.")
        .tempdir()
        .context("make a temporary directory")?;
    guard::register_dir(tmp.path().to_owned());
    // tcpdump writes its file as user tcpdump, below this directory.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
    let lab = Lab::create()?;
    let opts = LoadOptions {
        packets: args.packets,
        runs: cli.runs,
        pps: args.pps,
        captures: usize::from(captures),
    };
    let tables = load_figures::run(&opts, &bins, &lab, tmp.path(), &[figure])?;
    println!("{}", tables.trim_start());
    Ok(())
}

/// `pcapd-bench list-latency`: prints one line of figures.
fn list_latency(cli: &Cli, captures: u16, secs: f64) -> Result<()> {
    list_latency::check_options(captures, secs)?;
    if !nix::unistd::geteuid().is_root() {
        bail!("run this as root: pcapd captures packets");
    }
    let bins = binaries(cli.bin_dir.as_deref())?;
    let tmp = tempfile::Builder::new()
        .prefix("pcapd-bench.")
        .tempdir()
        .context("make a temporary directory")?;
    guard::register_dir(tmp.path().to_owned());
    let figures = list_latency::measure(&bins, &tmp.path().join("pcapd"), captures, secs)?;
    println!("{}", list_latency::report(captures, &figures));
    Ok(())
}

/// `pcapd-bench decode`: prints the decoding table.
fn decode(cli: &Cli, packets: u64, dir: Option<&Path>) -> Result<()> {
    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .context("find this program")?
            .parent()
            .context("this program's directory")?
            .to_path_buf(),
    };
    let pcap = bin_dir.join("pcap");
    if !pcap.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release -p pcap-cli`, or say where it \
             is with --bin-dir",
            pcap.display()
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("pcapd-bench.")
        .tempdir()
        .context("make a temporary directory")?;
    guard::register_dir(tmp.path().to_owned());
    decode::run(packets, &pcap, dir.unwrap_or(tmp.path()))
}

/// `pcapd-bench index`: prints the segment index figures.
fn segment_index(cli: &Cli, size_mb: u64, dir: Option<&Path>) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("run this as root: pcapd runs as root");
    }
    let bins = binaries(cli.bin_dir.as_deref())?;
    let tmp = tempfile::Builder::new()
        .prefix("pcapd-bench.")
        .tempdir_in(dir.unwrap_or(&std::env::temp_dir()))
        .context("make a temporary directory")?;
    guard::register_dir(tmp.path().to_owned());
    let figures = segment_index::run(&bins, tmp.path(), size_mb, cli.runs)?;
    println!("{}", segment_index::report(&figures));
    Ok(())
}

/// One measurement of every figure, each tool and each daemon fresh.
fn one_run(
    cli: &Cli,
    bins: &Bins,
    lab: &Lab,
    file: &Path,
    generated: Generated,
    dir: &Path,
) -> Result<Run> {
    eprintln!("capturing with tcpdump");
    let tcpdump_dir = dir.join("tcpdump");
    let tcpdump = capture::with_tcpdump(lab, file, &tcpdump_dir)?;

    eprintln!("capturing with pcapd");
    let pcapd = Pcapd::start(bins, &lab.rx_ns, &dir.join("pcapd"))?;
    let cap = capture::with_pcapd(lab, &pcapd, file, generated.file_bytes)?;
    eprintln!("replaying");
    let replay = replay::measure(
        &pcapd,
        cap.id,
        &cap.segments,
        &tcpdump_dir.join("tcpdump.pcap"),
    )?;
    eprintln!("listening");
    let latency = latency::measure(bins, lab, &pcapd, cli.latency_pps, cli.latency_secs)?;
    pcapd.shutdown()?;
    std::fs::remove_dir_all(dir).context("remove the run's captures")?;

    eprintln!("memory");
    let pcapd = Pcapd::start(bins, &lab.rx_ns, &dir.join("pcapd-memory"))?;
    let memory = memory::measure(
        bins,
        lab,
        &pcapd,
        cli.captures,
        cli.stall_secs,
        cli.stall_pps,
    )?;
    pcapd.shutdown()?;
    Ok(Run {
        tcpdump,
        pcapd: cap.figures,
        replay,
        latency,
        memory,
    })
}

/// pcapd and pcap next to this program (or in `dir`).
fn binaries(dir: Option<&Path>) -> Result<Bins> {
    let bench = std::env::current_exe().context("find this program")?;
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => bench
            .parent()
            .context("this program's directory")?
            .to_path_buf(),
    };
    let bins = Bins {
        pcapd: dir.join("pcapd"),
        pcap: dir.join("pcap"),
        bench,
    };
    for b in [&bins.pcapd, &bins.pcap] {
        if !b.is_file() {
            bail!(
                "{} is missing: build it with `cargo build --release -p pcapd -p pcap-cli`, \
                 or say where it is with --bin-dir",
                b.display()
            );
        }
    }
    Ok(bins)
}
