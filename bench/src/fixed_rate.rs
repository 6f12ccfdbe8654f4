//! CPU per packet at a fixed rate: the heavy mix sent at `--pps` (200,000 by default) to
//! tcpdump and then to one pcapd capture, each one's user+system CPU seconds per million
//! packets over the same send. At a fixed rate both do the same work per second, so the
//! ratio is the cost of a packet, not of a burst; it counts only when neither dropped.

use std::path::Path;

use anyhow::Result;

use crate::daemon::{Bins, Pcapd};
use crate::load::{self, pass, Rate, SetFigures, Table, TcpdumpFigures, Wanted};
use crate::netns::Lab;
use crate::stats::median;

/// pcapd's CPU per packet at most this many times tcpdump's (issue #14).
const RATIO_MAX: f64 = 0.2;
/// The achieved rate counts as the one asked for within this share.
const RATE_TOLERANCE: f64 = 0.05;

/// One run at the fixed rate.
#[derive(Debug, Clone)]
pub struct FixedRateRun {
    pub tcpdump: TcpdumpFigures,
    pub pcapd: SetFigures,
}

impl FixedRateRun {
    fn tcpdump_cpu_per_million(&self) -> f64 {
        self.tcpdump.cpu_secs * 1e6 / self.tcpdump.sent.packets.max(1) as f64
    }

    fn ratio(&self) -> f64 {
        self.pcapd.cpu_per_million() / self.tcpdump_cpu_per_million()
    }

    /// Neither dropped, both kept everything sent.
    fn clean(&self) -> bool {
        self.tcpdump.drops == 0
            && self.tcpdump.captured == self.tcpdump.sent.packets
            && self.pcapd.complete() == self.pcapd.captures.len()
    }

    fn on_rate(&self, pps: u64) -> bool {
        [self.tcpdump.sent.pps(), self.pcapd.sent.pps()]
            .iter()
            .all(|&r| (r / pps as f64 - 1.0).abs() <= RATE_TOLERANCE)
    }
}

/// Sends `packets` of `file` at `pps` to tcpdump, then to one capture (no filter) of a
/// fresh pcapd with an empty config file.
pub fn measure(
    bins: &Bins,
    lab: &Lab,
    file: &Path,
    file_bytes: u64,
    packets: u64,
    pps: u64,
    dir: &Path,
) -> Result<FixedRateRun> {
    eprintln!("fixed rate: tcpdump");
    let tcpdump = load::tcpdump(lab, file, Rate::Pps(pps), packets, &dir.join("tcpdump"))?;
    eprintln!("fixed rate: pcapd");
    let pcapd = Pcapd::start_default(bins, &lab.rx_ns, &dir.join("pcapd"))?;
    let all = [Wanted {
        filter: None,
        expected: packets,
    }];
    let pcapd = load::pcapd_set(lab, pcapd, file, file_bytes, Rate::Pps(pps), packets, &all)?;
    Ok(FixedRateRun { tcpdump, pcapd })
}

/// One line per run, for the log.
pub fn run_line(i: usize, r: &FixedRateRun) -> String {
    let c = r.pcapd.captures.first().copied().unwrap_or_default();
    format!(
        "fixed-rate run {i}: tcpdump {:.0} pps, {} drops, {}/{} captured, {:.3} CPU s; \
         pcapd {:.0} pps, {} drops, {}/{} read back, {:.3} CPU s; ratio {:.3}",
        r.tcpdump.sent.pps(),
        r.tcpdump.drops,
        r.tcpdump.captured,
        r.tcpdump.sent.packets,
        r.tcpdump.cpu_secs,
        r.pcapd.sent.pps(),
        c.drops,
        c.read_back,
        r.pcapd.sent.packets,
        r.pcapd.cpu_secs,
        r.ratio(),
    )
}

/// The table of the fixed-rate figure.
pub fn table(runs: &[FixedRateRun], pps: u64) -> String {
    let m = |f: &dyn Fn(&FixedRateRun) -> f64| {
        median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let mut t = Table::default();
    let on_rate = !runs.is_empty() && runs.iter().all(|r| r.on_rate(pps));
    t.row(
        &format!("CPU at {pps} packets/s: achieved rate (packets/s)"),
        format!("{:.0}", m(&|r| r.pcapd.sent.pps())),
        format!("tcpdump run: {:.0}", m(&|r| r.tcpdump.sent.pps())),
        String::new(),
        &format!("within {:.0}% of {pps} (every run)", RATE_TOLERANCE * 100.0),
        pass(on_rate),
    );
    let clean = !runs.is_empty() && runs.iter().all(FixedRateRun::clean);
    t.row(
        &format!("CPU at {pps} packets/s: kernel drops"),
        format!(
            "{:.0}",
            m(&|r| r.pcapd.captures.first().map_or(0, |c| c.drops) as f64)
        ),
        format!("tcpdump: {:.0}", m(&|r| r.tcpdump.drops as f64)),
        String::new(),
        "0 for both, everything kept (every run)",
        pass(clean),
    );
    let ratio = m(&|r| r.ratio());
    t.row(
        &format!("CPU at {pps} packets/s: CPU seconds per million packets"),
        format!("{:.3}", m(&|r| r.pcapd.cpu_per_million())),
        format!(
            "tcpdump -w FILE: {:.3}",
            m(&|r| r.tcpdump_cpu_per_million())
        ),
        format!("{ratio:.2}×"),
        "≤ 0.20× tcpdump, 0 drops for both",
        pass(clean && ratio <= RATIO_MAX),
    );
    t.row(
        &format!("CPU at {pps} packets/s: ratio in each run"),
        runs.iter()
            .map(|r| format!("{:.2}×", r.ratio()))
            .collect::<Vec<_>>()
            .join(", "),
        String::new(),
        String::new(),
        "",
        "",
    );
    t.render()
}
