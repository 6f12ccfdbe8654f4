//! Capturing the replayed file on the receiving end of the veth, once with tcpdump and
//! once with pcapd, and what each cost.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::Signal;

use crate::daemon::Pcapd;
use crate::guard::{self, run_ok, Proc};
use crate::netns::Lab;
use crate::procfs;
use crate::savefile::{self, count_records};

/// pcapd's kernel ring per capture (`BUFFER_BYTES` in pcapd/src/capture/open.rs), given to
/// tcpdump as `-B` so that both have the same room.
pub const BUFFER_KIB: u64 = 32 * 1024;
/// How long a replay of the whole file may take.
const SEND_LIMIT: Duration = Duration::from_secs(600);
/// How long a capture may take to catch up once the sender is done.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// What `tcpreplay` reported.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub packets: u64,
    pub failed: u64,
    /// Seconds the send took, as tcpreplay measured it.
    pub secs: f64,
}

/// One capture of the replayed file.
#[derive(Debug, Clone, Copy)]
pub struct CaptureFigures {
    pub sent: Sent,
    /// Records of the sender's packets read back from the capture's files.
    pub captured: u64,
    /// Records of anything else (there should be none).
    pub other: u64,
    pub kernel_drops: u64,
    /// CPU seconds of the capturing process.
    pub cpu_secs: f64,
    /// VmHWM of the capturing process, bytes.
    pub peak_rss: u64,
}

impl CaptureFigures {
    /// Captured packets per second of sending.
    pub fn pps(&self) -> f64 {
        self.captured as f64 / self.sent.secs
    }

    /// CPU microseconds per captured packet.
    pub fn cpu_us_per_packet(&self) -> f64 {
        self.cpu_secs * 1e6 / self.captured.max(1) as f64
    }

    /// No drops, nothing missing, nothing extra.
    pub fn complete(&self) -> bool {
        self.kernel_drops == 0 && self.captured == self.sent.packets && self.other == 0
    }
}

/// pcapd's capture of one run, kept for the replay figures.
pub struct PcapdCapture {
    pub figures: CaptureFigures,
    pub id: u64,
    pub segments: Vec<PathBuf>,
}

/// `ip netns exec TX tcpreplay --topspeed -i VETH FILE`.
pub fn tcpreplay(lab: &Lab, file: &Path) -> Result<Sent> {
    let mut cmd = Lab::command(&lab.tx_ns, "tcpreplay");
    cmd.args(["--topspeed", "-i", &lab.tx_if]).arg(file);
    let out = run_ok(&mut cmd, "tcpreplay", SEND_LIMIT)?;
    parse_tcpreplay(&out.stdout)
        .ok_or_else(|| anyhow!("unexpected tcpreplay output:\n{}", out.stdout))
}

fn parse_tcpreplay(out: &str) -> Option<Sent> {
    let field = |key: &str| -> Option<u64> {
        let l = out.lines().find(|l| l.trim_start().starts_with(key))?;
        l.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
    };
    let actual = out.lines().find(|l| l.starts_with("Actual:"))?;
    let secs: f64 = actual
        .split(" sent in ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Sent {
        packets: field("Successful packets")?,
        failed: field("Failed packets").unwrap_or(0),
        secs,
    })
}

/// Starts `tcpdump -i VETH -B BUFFER -w DIR/tcpdump.pcap` in the receiving namespace and
/// waits until it listens; returns it, its file and the file of its stderr.
pub fn start_tcpdump(lab: &Lab, dir: &Path) -> Result<(Proc, PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    let file = dir.join("tcpdump.pcap");
    let err_path = dir.join("tcpdump.stderr");
    let err = std::fs::File::create(&err_path)?;
    let mut cmd = Lab::command(&lab.rx_ns, "tcpdump");
    cmd.args(["-i", &lab.rx_if, "-B", &BUFFER_KIB.to_string(), "-w"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::from(err));
    let mut proc = Proc::spawn(&mut cmd, "tcpdump")?;
    let stderr = || std::fs::read_to_string(&err_path).unwrap_or_default();
    guard::wait_for(Duration::from_secs(15), "tcpdump to listen", || {
        if let Some(s) = proc.try_wait()? {
            bail!("tcpdump exited ({s}): {}", stderr());
        }
        Ok(stderr().contains("listening on"))
    })?;
    Ok((proc, file, err_path))
}

/// `tcpdump -i VETH -B BUFFER -w FILE` in the receiving namespace.
pub fn with_tcpdump(lab: &Lab, pcap_file: &Path, dir: &Path) -> Result<CaptureFigures> {
    // tcpdump writes the file after giving up root, as user tcpdump.
    let (mut proc, file, err_path) = start_tcpdump(lab, dir)?;
    let stderr = || std::fs::read_to_string(&err_path).unwrap_or_default();

    let sent = tcpreplay(lab, pcap_file)?;
    // tcpdump is done when its file stops growing for longer than its libpcap timeout
    // (1 s): until then the last, partly filled ring block may not have reached it.
    let mut last = (0, Instant::now());
    guard::wait_for(DRAIN_LIMIT, "tcpdump to catch up", || {
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        if len != last.0 {
            last = (len, Instant::now());
        }
        Ok(last.1.elapsed() >= Duration::from_secs(2))
    })?;
    let cpu_secs = procfs::cpu_seconds(proc.pid())?;
    let peak_rss = procfs::peak_rss(proc.pid())?;
    proc.stop(Signal::SIGINT, Duration::from_secs(30))?;
    let text = stderr();
    let kernel_drops = tcpdump_stat(&text, "packets dropped by kernel")
        .ok_or_else(|| anyhow!("no \"dropped by kernel\" line from tcpdump:\n{text}"))?;
    let count = count_records(&[file], &lab.endpoints().src_mac)?;
    Ok(CaptureFigures {
        sent,
        captured: count.ours,
        other: count.other,
        kernel_drops,
        cpu_secs,
        peak_rss,
    })
}

fn tcpdump_stat(stderr: &str, what: &str) -> Option<u64> {
    stderr
        .lines()
        .find(|l| l.contains(what))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `pcap init VETH`, `pcap start`, send, wait until everything is spooled (or nothing more
/// arrives), `pcap stop`; CPU is pcapd's over that window.
pub fn with_pcapd(
    lab: &Lab,
    pcapd: &Pcapd,
    pcap_file: &Path,
    file_bytes: u64,
) -> Result<PcapdCapture> {
    let mut args = vec![lab.rx_if.as_str()];
    // Keep the whole capture: the default spool limit is 1 GiB.
    let size = format!("{}M", file_bytes * 2 / (1 << 20) + 64);
    if file_bytes > 400 << 20 {
        args.extend(["--max-size", &size]);
    }
    let id = pcapd.init(&args)?;
    let cpu0 = procfs::cpu_seconds(pcapd.pid())?;
    pcapd.pcap(&["start", &id.to_string()])?;
    pcapd.wait_state(id, "ACTIVE")?;

    let sent = tcpreplay(lab, pcap_file)?;
    let mut last = (u64::MAX, Instant::now());
    guard::wait_for(DRAIN_LIMIT, "pcapd to spool what was sent", || {
        let spooled = pcapd.counter(id, "spooled_packets")?;
        if spooled != last.0 {
            last = (spooled, Instant::now());
        }
        Ok(spooled >= sent.packets || last.1.elapsed() >= Duration::from_secs(2))
    })?;
    pcapd.pcap(&["stop", &id.to_string()])?;
    pcapd.wait_state(id, "PAUSED")?;
    let cpu_secs = procfs::cpu_seconds(pcapd.pid())? - cpu0;
    let peak_rss = procfs::peak_rss(pcapd.pid())?;
    let kernel_drops = pcapd.counter(id, "dropped_kernel")?;

    let segments = savefile::segments(&pcapd.spool_dir(id))?;
    let count =
        count_records(&segments, &lab.endpoints().src_mac).context("read pcapd's spool back")?;
    Ok(PcapdCapture {
        figures: CaptureFigures {
            sent,
            captured: count.ours,
            other: count.other,
            kernel_drops,
            cpu_secs,
            peak_rss,
        },
        id,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tcpreplay_and_tcpdump_reports() {
        let out = "Actual: 1000000 packets (692000000 bytes) sent in 2.51 seconds\n\
                   Rated: 275697211.1 Bps, 2205.57 Mbps, 398406.37 pps\n\
                   Statistics for network device: pbt1\n\
                   \tSuccessful packets:        999990\n\
                   \tFailed packets:            10\n";
        let s = parse_tcpreplay(out).unwrap();
        assert_eq!((s.packets, s.failed), (999_990, 10));
        assert!((s.secs - 2.51).abs() < 1e-9);
        assert!(parse_tcpreplay("nothing").is_none());

        let err = "listening on x\n1000 packets captured\n1000 packets received by filter\n\
                   7 packets dropped by kernel\n";
        assert_eq!(tcpdump_stat(err, "packets dropped by kernel"), Some(7));
        assert_eq!(tcpdump_stat(err, "packets captured"), Some(1000));
    }
}
