//! The load figures of issue #14, run one after the other on one generated heavy-mix file:
//! the heavy mix at top speed, CPU per packet at a fixed rate, and many captures at once.
//! Each prints its own table under a heading; every figure is a median over the runs.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::daemon::Bins;
use crate::mix;
use crate::netns::Lab;
use crate::{fixed_rate, heavy, many_captures};

/// A load figure, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Figure {
    /// The heavy mix at top speed, pcapd's default configuration beside tcpdump -B 32768
    Heavy,
    /// CPU per packet at a fixed rate, pcapd beside tcpdump -B 32768 -w FILE
    Cpu,
    /// 1, 10 and 100 ACTIVE captures with different filters at a fixed rate
    Captures,
    /// The segment index: a selective replay of a 2.2 GB spool beside a full one
    Index,
}

/// Sizes of the load figures.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Packets of the heavy mix each send replays.
    pub packets: u64,
    pub runs: u32,
    /// The fixed rate of the CPU and many-captures figures.
    pub pps: u64,
    /// The most captures of the many-captures figure.
    pub captures: usize,
}

/// Generates the mix in `tmp` and measures `figures`; the tables, as Markdown.
pub fn run(
    opts: &LoadOptions,
    bins: &Bins,
    lab: &Lab,
    tmp: &Path,
    figures: &[Figure],
) -> Result<String> {
    let file = tmp.join("heavy-mix.pcap");
    eprintln!(
        "generating {} packets of the heavy mix in {}",
        opts.packets,
        file.display()
    );
    let mix = mix::write_savefile(&file, &lab.endpoints(), opts.packets)?;
    let mut out = String::new();
    let dir = |name: &str, i: u32| tmp.join(format!("{name}{i}"));
    let mb = mix.frame_bytes as f64 / 1e6;
    if figures.contains(&Figure::Heavy) {
        let mut runs = Vec::new();
        for i in 1..=opts.runs {
            let d = dir("heavy", i);
            let r = heavy::measure(bins, lab, &file, mix.file_bytes, opts.packets, &d)
                .with_context(|| format!("heavy mix, run {i}"))?;
            eprintln!("{}", heavy::run_line(i as usize, &r));
            runs.push(r);
            let _ = std::fs::remove_dir_all(&d);
        }
        let _ = write!(
            out,
            "\n### Heavy mix at top speed ({} packets, {mb:.0} MB of frames, default configuration)\n\n{}",
            opts.packets,
            heavy::table(&runs)
        );
    }
    if figures.contains(&Figure::Cpu) {
        let mut runs = Vec::new();
        for i in 1..=opts.runs {
            let d = dir("fixed-rate", i);
            let r =
                fixed_rate::measure(bins, lab, &file, mix.file_bytes, opts.packets, opts.pps, &d)
                    .with_context(|| format!("CPU at a fixed rate, run {i}"))?;
            eprintln!("{}", fixed_rate::run_line(i as usize, &r));
            runs.push(r);
            let _ = std::fs::remove_dir_all(&d);
        }
        let _ = write!(
            out,
            "\n### CPU per packet at {} packets/s ({} packets of the heavy mix)\n\n{}",
            opts.pps,
            opts.packets,
            fixed_rate::table(&runs, opts.pps)
        );
    }
    if figures.contains(&Figure::Captures) {
        let mut runs = Vec::new();
        for i in 1..=opts.runs {
            let d = dir("captures", i);
            let r = many_captures::measure(
                bins,
                lab,
                &file,
                &mix,
                opts.packets,
                opts.pps,
                opts.captures,
                &d,
            )
            .with_context(|| format!("many captures, run {i}"))?;
            eprintln!("{}", many_captures::run_line(i as usize, &r));
            runs.push(r);
            let _ = std::fs::remove_dir_all(&d);
        }
        let _ = write!(
            out,
            "\n### {} ACTIVE captures on one interface at {} packets/s ({} packets of the heavy mix)\n\n{}",
            opts.captures,
            opts.pps,
            opts.packets,
            many_captures::table(&runs, opts.pps)
        );
    }
    let _ = std::fs::remove_file(&file);
    Ok(out)
}

/// How the load figures are made, for the page `--out` writes.
pub fn describe(opts: &LoadOptions) -> String {
    format!(
        "- **heavy mix**: {packets} Ethernet/IPv4 frames of 64, 512 and 1500 bytes in equal \
           thirds, interleaved, UDP and TCP in turn, to 256 destination hosts (10.202.H.1) and \
           256 destination ports (5000-5255) drawn from a fixed pseudo-random sequence, with \
           correct checksums; nobody holds those addresses and forwarding is off in `rx`, so \
           its kernel drops them without replying. `tcpreplay --preload-pcap --limit=N` sends \
           it (the file read into memory first: read as it went, tcpreplay reached 170-190 \
           kpps here and never the 200 kpps of the fixed-rate figures; preloaded, 240-250 \
           kpps at top speed).\n\
         - **heavy mix at top speed**: `tcpreplay --topspeed` to `tcpdump -i VETH -B 32768 -w \
           FILE` (drops: its \"dropped by kernel\" line; captured: its file read back with \
           libpcap), then to one capture without a filter of a fresh pcapd started with an \
           empty config file (every setting at its default). pcapd's drops are \
           `counters.dropped_kernel` of `pcap --json list`, read 1.5 s after the capture caught \
           up (pcapd refreshes them every second while a capture runs); spooled is its spool \
           read back with libpcap after pcapd shut down. Target: 0 drops and every packet \
           spooled in every run. packets/s and MB/s are tcpreplay's (frames, without savefile \
           headers).\n\
         - **CPU at a fixed rate**: the same, sent with `tcpreplay --pps={pps}`; CPU is \
           utime+stime of /proc/PID/stat (all threads), for pcapd from all captures ACTIVE to \
           caught up, for tcpdump from \"listening\" to its file not growing for 2 s, per \
           million packets sent. tcpdump gets `-B 32768`, the ring pcapd has by default, so \
           that neither drops. Target: pcapd ≤ 0.20× tcpdump, 0 drops for both.\n\
         - **many captures**: for 1, 10 and {captures} captures, a fresh pcapd, that many \
           captures on the veth started with `pcap start --all` (the first without a filter, \
           then `host 10.202.H.1` and `udp dst port P` in turn, H and P counting up), the mix \
           at {pps} packets/s. Each capture's `spooled_packets` and its spool read back must \
           equal the count the generator tallied for its filter. Peak RSS is pcapd's VmHWM. \
           The kernel runs every socket's BPF filter on each packet in the sender's softirq, \
           so that cost is tcpreplay's, not pcapd's: pcapd's CPU is what its capture threads \
           do with the packets their filters kept, and their wake-ups. Past 16 captures on \
           the interface the others share one socket without a filter, and pcapd runs their \
           filters itself, once per packet for all filters that differ only in one constant \
           (as these do): that cost is pcapd's. \
           Targets at {captures}: 0 drops, peak RSS < 256 MiB.\n",
        packets = opts.packets,
        pps = opts.pps,
        captures = opts.captures,
    )
}
