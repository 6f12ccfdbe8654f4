//! pcapd's memory: idle with many captures defined, and while a live reader is stalled
//! (a `pcap listen` whose stdout is a pipe nobody reads) beside one capture under load.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::daemon::{Bins, Pcapd};
use crate::guard::{self, Proc};
use crate::latency::{parse_sent, sender_command};
use crate::netns::Lab;
use crate::procfs::rss;

/// First UDP port of the idle captures' filters (one port each).
const FIRST_PORT: u16 = 30_000;
/// Payload bytes of the load sent during the stall.
const LOAD_SIZE: usize = 1000;
/// How often RSS is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How long after the reader is killed the "after" figure is taken.
const SETTLE: Duration = Duration::from_secs(2);

/// VmRSS figures in bytes.
#[derive(Debug, Clone, Copy)]
pub struct MemoryFigures {
    /// With `captures` captures defined, none running.
    pub idle: u64,
    /// One capture ACTIVE under load, before the stalled reader connects.
    pub before: u64,
    /// Highest sample while the reader is stalled.
    pub max_during: u64,
    /// Highest sample in the second half of the stall minus the highest in the first:
    /// what memory still grew once the reader's queue was full.
    pub late_growth: i64,
    /// After the reader is killed and the load has ended.
    pub after: u64,
}

/// Defines `captures` captures on `lo` in a fresh pcapd, then stalls a reader of the first
/// for `stall_secs` while `pps` datagrams a second go through it.
pub fn measure(
    bins: &Bins,
    lab: &Lab,
    pcapd: &Pcapd,
    captures: u16,
    stall_secs: f64,
    pps: u64,
) -> Result<MemoryFigures> {
    let mut ids = Vec::new();
    for i in 0..captures.max(1) {
        ids.push(pcapd.init(&["lo", &format!("udp port {}", FIRST_PORT + i)])?);
    }
    guard::sleep(Duration::from_secs(1))?;
    let idle = rss(pcapd.pid())?;

    let id = ids[0].to_string();
    pcapd.pcap(&["start", &id])?;
    pcapd.wait_state(ids[0], "ACTIVE")?;
    let mut sender = Proc::spawn(
        sender_command(bins, lab, FIRST_PORT, pps, stall_secs + 1.0, LOAD_SIZE)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        "pcapd-bench send-udp",
    )?;
    guard::sleep(Duration::from_millis(500))?;
    let before = rss(pcapd.pid())?;

    // Its stdout stays open and unread until the reader is killed.
    let mut reader = Proc::spawn(
        pcapd
            .command()
            .args(["listen", &id])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        "pcap listen (stalled)",
    )?;
    let mut samples = Vec::new();
    let steps = (stall_secs / SAMPLE_EVERY.as_secs_f64()).ceil().max(2.0) as usize;
    for _ in 0..steps {
        guard::sleep(SAMPLE_EVERY)?;
        if let Some(s) = reader.try_wait()? {
            bail!("the stalled pcap listen exited ({s}) before it was killed");
        }
        samples.push(rss(pcapd.pid())?);
    }
    drop(reader);

    let out = sender.wait(Duration::from_secs(30))?;
    if !out.success() {
        bail!("the load sender failed ({out})");
    }
    let mut stdout = String::new();
    if let Some(mut p) = sender.child().stdout.take() {
        use std::io::Read;
        let _ = p.read_to_string(&mut stdout);
    }
    parse_sent(&stdout)?;
    guard::sleep(SETTLE)?;
    let after = rss(pcapd.pid())?;
    pcapd.pcap(&["stop", &id])?;

    let half = samples.len() / 2;
    let first = samples[..half].iter().copied().max().unwrap_or(before);
    let second = samples[half..].iter().copied().max().unwrap_or(before);
    Ok(MemoryFigures {
        idle,
        before,
        max_during: samples.iter().copied().max().unwrap_or(before),
        late_growth: second as i64 - first as i64,
        after,
    })
}
