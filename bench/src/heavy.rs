//! The heavy mix at top speed into the default configuration: does pcapd keep every packet
//! when a burst is heaviest? `tcpdump -B 32768 -w FILE` gets the same send in the same run.

use std::path::Path;

use anyhow::Result;

use crate::daemon::{Bins, Pcapd};
use crate::load::{self, pass, Rate, SetFigures, Table, TcpdumpFigures, Wanted};
use crate::netns::Lab;
use crate::stats::median;

/// One run: tcpdump, then pcapd, each receiving the whole file at top speed.
#[derive(Debug, Clone)]
pub struct HeavyRun {
    pub tcpdump: TcpdumpFigures,
    pub pcapd: SetFigures,
}

impl HeavyRun {
    /// pcapd dropped nothing and spooled every packet sent.
    pub fn complete(&self) -> bool {
        self.pcapd.sent.failed == 0 && self.pcapd.complete() == self.pcapd.captures.len()
    }
}

/// Sends `packets` of `file` at top speed to tcpdump, then to one capture (no filter) of a
/// fresh pcapd with an empty config file.
pub fn measure(
    bins: &Bins,
    lab: &Lab,
    file: &Path,
    file_bytes: u64,
    packets: u64,
    dir: &Path,
) -> Result<HeavyRun> {
    eprintln!("heavy mix: tcpdump");
    let tcpdump = load::tcpdump(lab, file, Rate::Top, packets, &dir.join("tcpdump"))?;
    eprintln!("heavy mix: pcapd");
    let pcapd = Pcapd::start_default(bins, &lab.rx_ns, &dir.join("pcapd"))?;
    let all = [Wanted {
        filter: None,
        expected: packets,
    }];
    let pcapd = load::pcapd_set(lab, pcapd, file, file_bytes, Rate::Top, packets, &all)?;
    Ok(HeavyRun { tcpdump, pcapd })
}

/// One line per run, for the log.
pub fn run_line(i: usize, r: &HeavyRun) -> String {
    let c = r.pcapd.captures.first().copied().unwrap_or_default();
    format!(
        "heavy run {i}: tcpdump {}/{} captured, {} drops, sent at {:.0} pps {:.0} MB/s; \
         pcapd {}/{} read back ({} spooled), {} drops, {:.2} CPU s, sent at {:.0} pps {:.0} MB/s",
        r.tcpdump.captured,
        r.tcpdump.sent.packets,
        r.tcpdump.drops,
        r.tcpdump.sent.pps(),
        r.tcpdump.sent.mbps(),
        c.read_back,
        r.pcapd.sent.packets,
        c.spooled,
        c.drops,
        r.pcapd.cpu_secs,
        r.pcapd.sent.pps(),
        r.pcapd.sent.mbps(),
    )
}

/// The table of the heavy-mix figure.
pub fn table(runs: &[HeavyRun]) -> String {
    let m = |f: &dyn Fn(&HeavyRun) -> f64| {
        median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let each = |f: &dyn Fn(&HeavyRun) -> u64| {
        runs.iter()
            .map(|r| f(r).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let first = |r: &HeavyRun| r.pcapd.captures.first().copied().unwrap_or_default();
    let mut t = Table::default();
    t.row(
        "heavy mix: sender packets/s, MB/s (tcpreplay --topspeed)",
        format!(
            "{:.0}, {:.0}",
            m(&|r| r.pcapd.sent.pps()),
            m(&|r| r.pcapd.sent.mbps())
        ),
        format!(
            "tcpdump run: {:.0}, {:.0}",
            m(&|r| r.tcpdump.sent.pps()),
            m(&|r| r.tcpdump.sent.mbps())
        ),
        String::new(),
        "",
        "",
    );
    t.row(
        "heavy mix: packets sent (tcpreplay)",
        format!("{:.0}", m(&|r| r.pcapd.sent.packets as f64)),
        format!("tcpdump run: {:.0}", m(&|r| r.tcpdump.sent.packets as f64)),
        String::new(),
        "",
        "",
    );
    t.row(
        "heavy mix: packets spooled (read back)",
        format!("{:.0}", m(&|r| first(r).read_back as f64)),
        format!("tcpdump: {:.0}", m(&|r| r.tcpdump.captured as f64)),
        format!(
            "{:.2}×",
            m(&|r| first(r).read_back as f64 / r.tcpdump.captured.max(1) as f64)
        ),
        "",
        "",
    );
    let complete = runs.iter().all(HeavyRun::complete);
    t.row(
        "heavy mix: kernel drops, default configuration",
        format!("{:.0}", m(&|r| first(r).drops as f64)),
        format!("tcpdump -B 32768: {:.0}", m(&|r| r.tcpdump.drops as f64)),
        String::new(),
        "0 drops, every sent packet spooled (every run)",
        pass(complete && !runs.is_empty()),
    );
    t.row(
        "heavy mix: kernel drops in each run",
        each(&|r| first(r).drops),
        format!("tcpdump: {}", each(&|r| r.tcpdump.drops)),
        String::new(),
        "",
        "",
    );
    t.row(
        "heavy mix: CPU seconds per million packets",
        format!("{:.2}", m(&|r| r.pcapd.cpu_per_million())),
        format!(
            "tcpdump: {:.2}",
            m(&|r| r.tcpdump.cpu_secs * 1e6 / r.tcpdump.sent.packets.max(1) as f64)
        ),
        String::new(),
        "",
        "",
    );
    t.render()
}
