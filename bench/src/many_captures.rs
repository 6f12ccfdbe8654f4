//! Many ACTIVE captures on one interface: 1, 10 and N (100 by default) captures with
//! different filters on the receiving veth end, the first matching everything and the rest
//! selective (`host 10.202.H.1` or `udp dst port P`, each a fraction of a percent of the
//! mix), and the heavy mix at a fixed rate through them. Each count gets a fresh pcapd, so
//! its VmHWM is the peak of that count alone.

use std::path::Path;

use anyhow::Result;

use crate::daemon::{Bins, Pcapd};
use crate::load::{self, pass, Rate, SetFigures, Table, Wanted};
use crate::mix::{self, MixFile};
use crate::netns::Lab;
use crate::stats::median;

/// pcapd's peak RSS with the most captures (issue #14).
const PEAK_RSS_MAX: f64 = 256.0 * MIB;
const MIB: f64 = 1024.0 * 1024.0;
/// The achieved rate counts as the one asked for within this share.
const RATE_TOLERANCE: f64 = 0.05;

/// One run: a capture set per count, in increasing order.
#[derive(Debug, Clone)]
pub struct CapturesRun {
    pub sets: Vec<(usize, SetFigures)>,
}

/// The capture counts measured: 1, 10 and `max`.
pub fn counts(max: usize) -> Vec<usize> {
    let mut v: Vec<usize> = [1, 10, max].into_iter().filter(|&n| n <= max).collect();
    v.dedup();
    v
}

/// The first `n` filters of the set, with the packets each should keep.
pub fn wanted(n: usize, mix: &MixFile, packets: u64) -> Vec<Wanted> {
    (0..n)
        .map(|k| {
            let (filter, expected) = mix::filter(k, &mix.tally);
            Wanted {
                filter,
                expected: expected.min(packets),
            }
        })
        .collect()
}

/// For each count, a fresh pcapd with an empty config file and that many captures, and
/// `packets` of `file` sent at `pps`.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    bins: &Bins,
    lab: &Lab,
    file: &Path,
    mix: &MixFile,
    packets: u64,
    pps: u64,
    max: usize,
    dir: &Path,
) -> Result<CapturesRun> {
    let mut sets = Vec::new();
    for n in counts(max) {
        eprintln!("{n} captures");
        let pcapd = Pcapd::start_default(bins, &lab.rx_ns, &dir.join(format!("pcapd-{n}")))?;
        let w = wanted(n, mix, packets);
        let set = load::pcapd_set(
            lab,
            pcapd,
            file,
            mix.file_bytes,
            Rate::Pps(pps),
            packets,
            &w,
        )?;
        sets.push((n, set));
    }
    Ok(CapturesRun { sets })
}

/// One line per run, for the log.
pub fn run_line(i: usize, r: &CapturesRun) -> String {
    let parts: Vec<String> = r
        .sets
        .iter()
        .map(|(n, s)| {
            format!(
                "{n}: {:.0} pps, drops {} (max {}), {}/{n} complete, {:.3} CPU s/M, peak {:.0} MiB",
                s.sent.pps(),
                s.drops_sum(),
                s.drops_max(),
                s.complete(),
                s.cpu_per_million(),
                s.peak_rss as f64 / MIB
            )
        })
        .collect();
    format!("captures run {i}: {}", parts.join("; "))
}

/// The table of the many-captures figure.
pub fn table(runs: &[CapturesRun], pps: u64) -> String {
    let m = |f: &dyn Fn(&CapturesRun) -> f64| {
        median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let counts: Vec<usize> = runs
        .first()
        .map(|r| r.sets.iter().map(|s| s.0).collect())
        .unwrap_or_default();
    let Some(&max) = counts.last() else {
        return String::new();
    };
    let set = |r: &CapturesRun, n: usize| -> SetFigures {
        r.sets
            .iter()
            .find(|s| s.0 == n)
            .map(|s| s.1.clone())
            .unwrap_or_default()
    };
    let mut t = Table::default();
    for &n in &counts {
        let top = n == max;
        let on_rate = runs
            .iter()
            .all(|r| (set(r, n).sent.pps() / pps as f64 - 1.0).abs() <= RATE_TOLERANCE);
        let captures = if n == 1 { "capture" } else { "captures" };
        t.row(
            &format!("{n} {captures} at {pps} packets/s: achieved rate (packets/s)"),
            format!("{:.0}", m(&|r| set(r, n).sent.pps())),
            String::new(),
            String::new(),
            &format!("within {:.0}% of {pps} (every run)", RATE_TOLERANCE * 100.0),
            pass(on_rate),
        );
        let clean = runs.iter().all(|r| {
            let s = set(r, n);
            s.drops_sum() == 0 && s.complete() == n
        });
        t.row(
            &format!("{n} {captures}: kernel drops, sum / max of one capture"),
            format!(
                "{:.0} / {:.0}",
                m(&|r| set(r, n).drops_sum() as f64),
                m(&|r| set(r, n).drops_max() as f64)
            ),
            String::new(),
            String::new(),
            if top { "0 drops (every run)" } else { "" },
            if top { pass(clean) } else { "" },
        );
        t.row(
            &format!("{n} {captures}: captures that kept exactly their matching packets"),
            format!("{:.0} / {n}", m(&|r| set(r, n).complete() as f64)),
            String::new(),
            String::new(),
            "",
            "",
        );
        let peak = m(&|r| set(r, n).peak_rss as f64);
        t.row(
            &format!("{n} {captures}: pcapd peak RSS (MiB)"),
            format!("{:.1}", peak / MIB),
            String::new(),
            String::new(),
            if top { "< 256 MiB" } else { "" },
            if top { pass(peak < PEAK_RSS_MAX) } else { "" },
        );
        t.row(
            &format!("{n} {captures}: CPU seconds per million packets"),
            format!("{:.3}", m(&|r| set(r, n).cpu_per_million())),
            String::new(),
            format!(
                "{:.2}× 1 capture",
                m(&|r| set(r, n).cpu_per_million() / set(r, 1).cpu_per_million())
            ),
            "",
            "",
        );
    }
    if max > 1 {
        t.row(
            &format!("CPU per million packets added by each capture beyond the first ({max})"),
            format!(
                "{:.4}",
                m(
                    &|r| (set(r, max).cpu_per_million() - set(r, 1).cpu_per_million())
                        / (max - 1) as f64
                )
            ),
            String::new(),
            String::new(),
            "",
            "",
        );
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_the_most() {
        assert_eq!(counts(100), [1, 10, 100]);
        assert_eq!(counts(10), [1, 10]);
        assert_eq!(counts(5), [1, 5]);
        assert_eq!(counts(1), [1]);
    }
}
