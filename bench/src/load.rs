//! The pieces the load figures (heavy mix, CPU at a fixed rate, many captures) share:
//! sending a file with tcpreplay at top speed or at a fixed rate, a tcpdump beside it, a set
//! of pcapd captures on the receiving veth end, and the Markdown table they print.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use nix::sys::signal::Signal;

use crate::daemon::Pcapd;
use crate::guard::{self, run_ok};
use crate::netns::Lab;
use crate::procfs;
use crate::savefile::{self, count_records};

/// How long one send may take.
const SEND_LIMIT: Duration = Duration::from_secs(600);
/// How long a capture may take to catch up once the sender is done.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// A capture has caught up when its count has not moved for this long (longer than
/// libpcap's 1 s timeout, after which the last, partly filled ring block is handed over).
const QUIET: Duration = Duration::from_secs(2);
/// pcapd refreshes a capture's kernel statistics every second while it runs (and not when
/// it stops): the drop counters are read once this long has passed after the drain.
const STATS_REFRESH: Duration = Duration::from_millis(1_500);

/// How fast tcpreplay sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Top,
    Pps(u64),
}

/// What tcpreplay reported for one send.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    pub packets: u64,
    pub failed: u64,
    /// Bytes of the frames sent.
    pub bytes: u64,
    /// Seconds the send took, as tcpreplay measured it.
    pub secs: f64,
}

impl Sent {
    /// Packets per second achieved.
    pub fn pps(&self) -> f64 {
        self.packets as f64 / self.secs
    }

    /// 10^6 bytes per second achieved.
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
}

/// `ip netns exec TX tcpreplay --preload-pcap (--topspeed | --pps N) --limit COUNT -i VETH FILE`.
pub fn send(lab: &Lab, file: &Path, rate: Rate, count: u64) -> Result<Sent> {
    let mut cmd = Lab::command(&lab.tx_ns, "tcpreplay");
    // The file is read into memory before the send starts: reading it as it goes held
    // tcpreplay to 170-190 kpps here, 240-250 kpps preloaded.
    cmd.arg("--preload-pcap");
    match rate {
        Rate::Top => cmd.arg("--topspeed"),
        Rate::Pps(n) => cmd.arg(format!("--pps={n}")),
    };
    cmd.arg(format!("--limit={count}"))
        .args(["-i", &lab.tx_if])
        .arg(file);
    let out = run_ok(&mut cmd, "tcpreplay", SEND_LIMIT)?;
    parse_tcpreplay(&out.stdout)
        .ok_or_else(|| anyhow!("unexpected tcpreplay output:\n{}", out.stdout))
}

fn parse_tcpreplay(out: &str) -> Option<Sent> {
    let field = |key: &str| -> Option<u64> {
        let l = out.lines().find(|l| l.trim_start().starts_with(key))?;
        l.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
    };
    // "Actual: 1000000 packets (692000000 bytes) sent in 2.51 seconds"
    let actual = out.lines().find(|l| l.starts_with("Actual:"))?;
    let bytes = actual
        .split('(')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let secs = actual
        .split(" sent in ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Sent {
        packets: field("Successful packets")?,
        failed: field("Failed packets").unwrap_or(0),
        bytes,
        secs,
    })
}

/// tcpdump's side of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpdumpFigures {
    pub sent: Sent,
    /// Records from the sender read back from its file with libpcap.
    pub captured: u64,
    /// Its "packets dropped by kernel".
    pub drops: u64,
    /// CPU seconds from listening to caught up.
    pub cpu_secs: f64,
}

/// `tcpdump -i VETH -B 32768 -w FILE` in the receiving namespace while `file` is sent.
pub fn tcpdump(
    lab: &Lab,
    file: &Path,
    rate: Rate,
    count: u64,
    dir: &Path,
) -> Result<TcpdumpFigures> {
    // tcpdump writes its file after giving up root, as user tcpdump.
    let (mut proc, out, err_path) = crate::capture::start_tcpdump(lab, dir)?;
    let stderr = || std::fs::read_to_string(&err_path).unwrap_or_default();
    let cpu0 = procfs::cpu_seconds(proc.pid())?;
    let sent = send(lab, file, rate, count)?;
    let mut last = (u64::MAX, Instant::now());
    guard::wait_for(DRAIN_LIMIT, "tcpdump to catch up", || {
        let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        if len != last.0 {
            last = (len, Instant::now());
        }
        Ok(last.1.elapsed() >= QUIET)
    })?;
    let cpu_secs = procfs::cpu_seconds(proc.pid())? - cpu0;
    proc.stop(Signal::SIGINT, Duration::from_secs(30))?;
    let text = stderr();
    let drops = text
        .lines()
        .find(|l| l.contains("packets dropped by kernel"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no \"dropped by kernel\" line from tcpdump:\n{text}"))?;
    let count = count_records(std::slice::from_ref(&out), &lab.endpoints().src_mac)
        .context("read tcpdump's file back")?;
    let _ = std::fs::remove_file(&out);
    Ok(TcpdumpFigures {
        sent,
        captured: count.ours,
        drops,
        cpu_secs,
    })
}

/// One capture of a set: its filter and how many packets of the file it should keep.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub filter: Option<String>,
    pub expected: u64,
}

/// What one capture of a set did.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaptureResult {
    pub expected: u64,
    /// `counters.dropped_kernel`.
    pub drops: u64,
    /// `counters.spooled_packets`.
    pub spooled: u64,
    /// Records from the sender read back from its spool with libpcap.
    pub read_back: u64,
}

impl CaptureResult {
    /// No drops, and exactly the matching packets spooled and read back.
    pub fn complete(&self) -> bool {
        self.drops == 0 && self.spooled == self.expected && self.read_back == self.expected
    }
}

/// pcapd's side of a run with a set of captures.
#[derive(Debug, Clone, Default)]
pub struct SetFigures {
    pub sent: Sent,
    pub captures: Vec<CaptureResult>,
    /// pcapd's CPU seconds (all threads) from all captures ACTIVE to all caught up.
    pub cpu_secs: f64,
    /// pcapd's VmHWM, bytes (a fresh daemon: its peak over the whole run).
    pub peak_rss: u64,
}

impl SetFigures {
    /// pcapd's CPU seconds per million packets sent.
    pub fn cpu_per_million(&self) -> f64 {
        self.cpu_secs * 1e6 / self.sent.packets.max(1) as f64
    }

    pub fn drops_sum(&self) -> u64 {
        self.captures.iter().map(|c| c.drops).sum()
    }

    pub fn drops_max(&self) -> u64 {
        self.captures.iter().map(|c| c.drops).max().unwrap_or(0)
    }

    /// Captures that kept exactly their matching packets without drops.
    pub fn complete(&self) -> usize {
        self.captures.iter().filter(|c| c.complete()).count()
    }
}

/// Defines `wanted` captures on the receiving veth end of a fresh `pcapd` (nothing else in
/// it), starts them all, sends `count` packets of `file`, waits until every capture caught
/// up, then shuts pcapd down and reads every spool back. CPU counts only the capturing:
/// from all ACTIVE to all caught up, with no API call during the send.
pub fn pcapd_set(
    lab: &Lab,
    pcapd: Pcapd,
    file: &Path,
    file_bytes: u64,
    rate: Rate,
    count: u64,
    wanted: &[Wanted],
) -> Result<SetFigures> {
    // Keep the whole capture: the default spool limit is 1 GiB.
    let size = format!("{}M", file_bytes * 2 / (1 << 20) + 64);
    let mut ids = Vec::new();
    for w in wanted {
        let mut args = vec![lab.rx_if.as_str()];
        if let Some(f) = &w.filter {
            args.push(f);
        }
        if w.filter.is_none() && file_bytes > 400 << 20 {
            args.extend(["--max-size", &size]);
        }
        ids.push(pcapd.init(&args)?);
    }
    pcapd.pcap(&["start", "--all"])?;
    guard::wait_for(
        Duration::from_secs(60),
        "every capture to be ACTIVE",
        || {
            let list = list(&pcapd)?;
            Ok(ids
                .iter()
                .all(|id| list.iter().any(|c| c.0 == *id && c.1 == "ACTIVE")))
        },
    )?;

    let cpu0 = procfs::cpu_seconds(pcapd.pid())?;
    let sent = send(lab, file, rate, count)?;
    let expected: Vec<u64> = wanted
        .iter()
        .map(|w| w.expected.min(sent.packets))
        .collect();
    let mut last = (Vec::new(), Instant::now());
    guard::wait_for(DRAIN_LIMIT, "pcapd to spool what was sent", || {
        let spooled = spooled(&pcapd, &ids)?;
        if spooled != last.0 {
            last = (spooled.clone(), Instant::now());
        }
        let done = spooled.iter().zip(&expected).all(|(s, e)| s >= e);
        Ok(done || last.1.elapsed() >= QUIET)
    })?;
    let cpu_secs = procfs::cpu_seconds(pcapd.pid())? - cpu0;
    guard::sleep(STATS_REFRESH)?;
    let list = pcapd.pcap(&["--json", "list"])?;
    let v: serde_json::Value =
        serde_json::from_str(&list.stdout).context("parse pcap --json list")?;
    let peak_rss = procfs::peak_rss(pcapd.pid())?;
    let dirs: Vec<PathBuf> = ids.iter().map(|&id| pcapd.spool_dir(id)).collect();
    let mut captures = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let c = v
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"].as_u64() == Some(id)))
            .ok_or_else(|| anyhow!("capture {id} is not listed"))?;
        let counter = |name: &str| {
            c["counters"][name]
                .as_u64()
                .ok_or_else(|| anyhow!("no counter {name} in {c}"))
        };
        let drops = counter("dropped_kernel")?;
        if drops > 0 {
            eprintln!(
                "capture {id} ({}) dropped {drops}: {c}\npcapd log:\n{}",
                wanted[i].filter.as_deref().unwrap_or("no filter"),
                pcapd.log_tail()
            );
        }
        captures.push(CaptureResult {
            expected: expected[i],
            drops,
            spooled: counter("spooled_packets")?,
            read_back: 0,
        });
    }
    // Every segment closed and flushed before it is read.
    pcapd.shutdown()?;
    for (c, dir) in captures.iter_mut().zip(&dirs) {
        let segments = savefile::segments(dir)?;
        c.read_back = count_records(&segments, &lab.endpoints().src_mac)
            .with_context(|| format!("read the spool in {} back", dir.display()))?
            .ours;
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(SetFigures {
        sent,
        captures,
        cpu_secs,
        peak_rss,
    })
}

/// (id, state) of every capture.
fn list(pcapd: &Pcapd) -> Result<Vec<(u64, String)>> {
    let out = pcapd.pcap(&["--json", "list"])?;
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout).context("parse pcap --json list")?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| Some((c["id"].as_u64()?, c["state"].as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default())
}

/// `spooled_packets` of each of `ids`, in order.
fn spooled(pcapd: &Pcapd, ids: &[u64]) -> Result<Vec<u64>> {
    let out = pcapd.pcap(&["--json", "list"])?;
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout).context("parse pcap --json list")?;
    ids.iter()
        .map(|&id| {
            v.as_array()
                .and_then(|a| a.iter().find(|c| c["id"].as_u64() == Some(id)))
                .and_then(|c| c["counters"]["spooled_packets"].as_u64())
                .ok_or_else(|| anyhow!("no spooled_packets for capture {id}"))
        })
        .collect()
}

/// Rows of figures printed as a Markdown table with the same columns as the main one.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<[String; 6]>,
}

impl Table {
    /// Adds a row: figure, pcapd, peer, ratio, target, result.
    pub fn row(
        &mut self,
        figure: &str,
        pcapd: String,
        peer: String,
        ratio: String,
        target: &str,
        result: &str,
    ) {
        self.rows.push([
            figure.to_owned(),
            pcapd,
            peer,
            ratio,
            target.to_owned(),
            result.to_owned(),
        ]);
    }

    /// The Markdown text.
    pub fn render(&self) -> String {
        let mut out = String::from("| figure | pcapd | peer | ratio | target | result |\n");
        out.push_str("| --- | ---: | ---: | ---: | --- | --- |\n");
        for r in &self.rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        out
    }
}

/// "PASS" or "FAIL".
pub fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tcpreplay_totals() {
        let out = "Actual: 1000000 packets (692000000 bytes) sent in 2.51 seconds\n\
                   Rated: 275697211.1 Bps, 2205.57 Mbps, 398406.37 pps\n\
                   Statistics for network device: pbt1\n\
                   \tSuccessful packets:        999990\n\
                   \tFailed packets:            10\n";
        let s = parse_tcpreplay(out).unwrap();
        assert_eq!((s.packets, s.failed, s.bytes), (999_990, 10, 692_000_000));
        assert!((s.mbps() - 692.0 / 2.51).abs() < 1e-6);
        assert!(parse_tcpreplay("nothing").is_none());
    }

    #[test]
    fn a_table_has_six_cells_a_row() {
        let mut t = Table::default();
        t.row("a", "1".into(), "2".into(), String::new(), "t", pass(true));
        assert_eq!(
            t.render().lines().nth(2),
            Some("| a | 1 | 2 |  | t | PASS |")
        );
    }
}
