//! The figures of all runs as one Markdown table: medians, ratios against the peer measured
//! in the same run, the targets and whether each is met.

use std::fmt::Write as _;

use crate::capture::CaptureFigures;
use crate::latency::LatencyFigures;
use crate::memory::MemoryFigures;
use crate::replay::ReplayFigures;
use crate::stats::median;

/// Targets (issue #5).
const CPU_RATIO_MAX: f64 = 0.8;
const REPLAY_RATIO_MIN: f64 = 0.7;
/// `pcap replay ID | cat` against `tcpdump -r FILE -w - | cat` on the same packets.
const REPLAY_VS_TCPDUMP_MIN: f64 = 1.0;
const LISTEN_P99_MAX_MS: f64 = 5.0;
const IDLE_RSS_MAX: f64 = 40.0 * MIB;
/// "Flat" while a reader is stalled: at most the reader's queue (16 MiB in pcapd) and as
/// much again for transport buffers above the figure before, and no growth in the second
/// half of the stall beyond noise.
const STALL_GROWTH_MAX: f64 = 32.0 * MIB;
const STALL_LATE_GROWTH_MAX: f64 = 2.0 * MIB;
const MIB: f64 = 1024.0 * 1024.0;

/// Everything one run measured.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub tcpdump: CaptureFigures,
    pub pcapd: CaptureFigures,
    pub replay: ReplayFigures,
    pub latency: LatencyFigures,
    pub memory: MemoryFigures,
}

/// The table, one row per figure.
pub fn table(runs: &[Run], captures: u16, listen_pps: u64) -> String {
    let m = |f: &dyn Fn(&Run) -> f64| {
        median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut row = |a: &str, b: String, c: String, d: String, e: &str, f: &str| {
        rows.push([a.to_owned(), b, c, d, e.to_owned(), f.to_owned()]);
    };
    let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let int = |v: f64| format!("{v:.0}");
    let ratio = |v: f64| format!("{v:.2}×");

    row(
        "capture: packets sent (tcpreplay)",
        int(m(&|r| r.pcapd.sent.packets as f64)),
        format!(
            "tcpdump run: {}",
            int(m(&|r| r.tcpdump.sent.packets as f64))
        ),
        String::new(),
        "",
        "",
    );
    row(
        "capture: packets captured (read back)",
        int(m(&|r| r.pcapd.captured as f64)),
        format!("tcpdump: {}", int(m(&|r| r.tcpdump.captured as f64))),
        ratio(m(&|r| {
            r.pcapd.captured as f64 / r.tcpdump.captured.max(1) as f64
        })),
        "",
        "",
    );
    let complete = runs.iter().all(|r| r.pcapd.complete());
    row(
        "capture: kernel drops",
        int(m(&|r| r.pcapd.kernel_drops as f64)),
        format!("tcpdump: {}", int(m(&|r| r.tcpdump.kernel_drops as f64))),
        String::new(),
        "0 drops, every sent packet spooled (every run)",
        pass(complete),
    );
    row(
        "capture: CPU seconds",
        format!("{:.2}", m(&|r| r.pcapd.cpu_secs)),
        format!("tcpdump: {:.2}", m(&|r| r.tcpdump.cpu_secs)),
        ratio(m(&|r| r.pcapd.cpu_secs / r.tcpdump.cpu_secs)),
        "",
        "",
    );
    let cpu_ratio = m(&|r| r.pcapd.cpu_us_per_packet() / r.tcpdump.cpu_us_per_packet());
    row(
        "capture: CPU µs per packet",
        format!("{:.3}", m(&|r| r.pcapd.cpu_us_per_packet())),
        format!("tcpdump: {:.3}", m(&|r| r.tcpdump.cpu_us_per_packet())),
        ratio(cpu_ratio),
        "≤ 0.80× tcpdump -w FILE",
        pass(cpu_ratio <= CPU_RATIO_MAX),
    );
    row(
        "capture: peak RSS (MiB)",
        format!("{:.1}", m(&|r| r.pcapd.peak_rss as f64) / MIB),
        format!("tcpdump: {:.1}", m(&|r| r.tcpdump.peak_rss as f64) / MIB),
        ratio(m(&|r| r.pcapd.peak_rss as f64 / r.tcpdump.peak_rss as f64)),
        "",
        "",
    );
    row(
        "capture: packets/s (captured ÷ send time)",
        int(m(&|r| r.pcapd.pps())),
        format!("tcpdump: {}", int(m(&|r| r.tcpdump.pps()))),
        ratio(m(&|r| r.pcapd.pps() / r.tcpdump.pps())),
        "",
        "",
    );
    let replay_ratio = m(&|r| r.replay.pcapd / r.replay.cat);
    row(
        "replay: `pcap replay ID \\| cat` (MB/s)",
        int(m(&|r| r.replay.pcapd)),
        format!("cat: {}", int(m(&|r| r.replay.cat))),
        ratio(replay_ratio),
        "≥ 0.70× cat",
        pass(replay_ratio >= REPLAY_RATIO_MIN),
    );
    row(
        "replay streamed (`PCAP_NO_HANDOFF=1`, as remote clients get it; MB/s)",
        int(m(&|r| r.replay.streamed)),
        format!("cat: {}", int(m(&|r| r.replay.cat))),
        ratio(m(&|r| r.replay.streamed / r.replay.cat)),
        "",
        "",
    );
    row(
        "replay: `tcpdump -r FILE -w - \\| cat` (MB/s)",
        int(m(&|r| r.replay.tcpdump)),
        format!("cat: {}", int(m(&|r| r.replay.cat))),
        ratio(m(&|r| r.replay.tcpdump / r.replay.cat)),
        "",
        "",
    );
    let against_tcpdump = m(&|r| r.replay.pcapd / r.replay.tcpdump);
    row(
        "replay: `pcap replay ID \\| cat` ÷ `tcpdump -r FILE -w - \\| cat`",
        ratio(against_tcpdump),
        String::new(),
        String::new(),
        "≥ 1.00× tcpdump",
        pass(against_tcpdump >= REPLAY_VS_TCPDUMP_MIN),
    );
    let p99 = m(&|r| r.latency.p99_ms);
    row(
        &format!("listen latency p50 / p99 / max (ms), {listen_pps} pps"),
        format!(
            "{:.2} / {:.2} / {:.2}",
            m(&|r| r.latency.p50_ms),
            p99,
            m(&|r| r.latency.max_ms)
        ),
        String::new(),
        String::new(),
        "p99 < 5 ms at 1000 pps",
        pass(p99 < LISTEN_P99_MAX_MS),
    );
    row(
        "listen: timed packets received / sent",
        format!(
            "{} / {}",
            int(m(&|r| r.latency.received as f64)),
            int(m(&|r| r.latency.sent as f64))
        ),
        String::new(),
        String::new(),
        "",
        "",
    );
    let idle = m(&|r| r.memory.idle as f64);
    row(
        &format!("pcapd RSS idle, {captures} captures defined (MiB)"),
        format!("{:.1}", idle / MIB),
        String::new(),
        String::new(),
        "< 40 MiB",
        pass(idle < IDLE_RSS_MAX),
    );
    let growth = m(&|r| r.memory.max_during as f64 - r.memory.before as f64);
    let late = m(&|r| r.memory.late_growth as f64);
    row(
        "pcapd RSS with a stalled reader: before / max during / after (MiB)",
        format!(
            "{:.1} / {:.1} / {:.1}",
            m(&|r| r.memory.before as f64) / MIB,
            m(&|r| r.memory.max_during as f64) / MIB,
            m(&|r| r.memory.after as f64) / MIB
        ),
        String::new(),
        format!("+{:.1} MiB, late +{:.1}", growth / MIB, late / MIB),
        "flat: ≤ +32 MiB, ≤ +2 MiB in the 2nd half",
        pass(growth <= STALL_GROWTH_MAX && late <= STALL_LATE_GROWTH_MAX),
    );

    // A `|` inside a cell, even in code, must be escaped in a Markdown table.
    let mut out = String::from("| figure | pcapd | peer | ratio | target | result |\n");
    out.push_str("| --- | ---: | ---: | ---: | --- | --- |\n");
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out
}

/// One line per run, for the log.
pub fn run_line(i: usize, r: &Run) -> String {
    format!(
        "run {i}: tcpreplay failed {}+{}; tcpdump {}/{} captured, {} drops, {:.2} s CPU; pcapd {}/{} captured, {} drops, \
         {:.2} s CPU; replay {:.0} MB/s (streamed {:.0}, cat {:.0}, tcpdump {:.0}); listen p50 {:.2} p99 {:.2} \
         max {:.2} ms ({}/{}); RSS idle {:.1} MiB, stalled {:.1}/{:.1}/{:.1} MiB",
        r.tcpdump.sent.failed,
        r.pcapd.sent.failed,
        r.tcpdump.captured,
        r.tcpdump.sent.packets,
        r.tcpdump.kernel_drops,
        r.tcpdump.cpu_secs,
        r.pcapd.captured,
        r.pcapd.sent.packets,
        r.pcapd.kernel_drops,
        r.pcapd.cpu_secs,
        r.replay.pcapd,
        r.replay.streamed,
        r.replay.cat,
        r.replay.tcpdump,
        r.latency.p50_ms,
        r.latency.p99_ms,
        r.latency.max_ms,
        r.latency.received,
        r.latency.sent,
        r.memory.idle as f64 / MIB,
        r.memory.before as f64 / MIB,
        r.memory.max_during as f64 / MIB,
        r.memory.after as f64 / MIB,
    )
}
