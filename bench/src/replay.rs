//! Replay throughput on the spool a run just captured, against the pipe ceiling: the same
//! bytes through `cat`, and tcpdump re-writing its own capture of the same packets. Each is
//! a `bash -c` pipeline ending in `cat > /dev/null`, timed by the wall clock. `pcap replay`
//! is timed twice: as it runs (the daemon hands it the segment files) and with
//! `PCAP_NO_HANDOFF=1` (the records streamed over gRPC, as remote clients get them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::daemon::Pcapd;
use crate::guard::run_ok;
use crate::savefile::total_bytes;

const PIPELINE_LIMIT: Duration = Duration::from_secs(300);

/// MB/s (10^6 bytes per second) of each pipeline.
#[derive(Debug, Clone, Copy)]
pub struct ReplayFigures {
    /// `pcap replay ID | cat > /dev/null`.
    pub pcapd: f64,
    /// The same with `PCAP_NO_HANDOFF=1`.
    pub streamed: f64,
    /// `cat SEGMENTS | cat > /dev/null`.
    pub cat: f64,
    /// `tcpdump -r FILE -w - | cat > /dev/null`.
    pub tcpdump: f64,
}

/// Times the three pipelines once each, after one untimed `cat` that brings the files
/// into the page cache.
pub fn measure(
    pcapd: &Pcapd,
    id: u64,
    segments: &[PathBuf],
    tcpdump_file: &Path,
) -> Result<ReplayFigures> {
    let spool_bytes = total_bytes(segments)?;
    let tcpdump_bytes = std::fs::metadata(tcpdump_file)?.len();
    // Every pipeline runs in pcapd's namespace, as `pcap` on the daemon's host does.
    let cat = |warm: bool| -> Result<f64> {
        let mut c = pcapd.shell_beside(r#"cat "$@" | cat > /dev/null"#);
        c.args(segments);
        let t = timed(&mut c, "cat SEGMENTS | cat")?;
        Ok(if warm { 0.0 } else { mb_per_s(spool_bytes, t) })
    };
    cat(true)?;
    let mut c = pcapd.shell_beside(r#"cat "$1" > /dev/null"#);
    c.arg(tcpdump_file);
    timed(&mut c, "cat FILE")?;

    let cat_mbs = cat(false)?;
    let mut c = pcapd.shell_beside(r#""$PCAP" replay "$1" | cat > /dev/null"#);
    c.arg(id.to_string());
    let pcapd_mbs = mb_per_s(spool_bytes, timed(&mut c, "pcap replay ID | cat")?);
    let mut c = pcapd.shell_beside(r#"PCAP_NO_HANDOFF=1 "$PCAP" replay "$1" | cat > /dev/null"#);
    c.arg(id.to_string());
    let streamed_mbs = mb_per_s(
        spool_bytes,
        timed(&mut c, "PCAP_NO_HANDOFF=1 pcap replay ID | cat")?,
    );
    let mut c = pcapd.shell_beside(r#"tcpdump -r "$1" -w - 2>/dev/null | cat > /dev/null"#);
    c.arg(tcpdump_file);
    let tcpdump_mbs = mb_per_s(tcpdump_bytes, timed(&mut c, "tcpdump -r FILE -w - | cat")?);
    Ok(ReplayFigures {
        pcapd: pcapd_mbs,
        streamed: streamed_mbs,
        cat: cat_mbs,
        tcpdump: tcpdump_mbs,
    })
}

fn timed(cmd: &mut Command, what: &str) -> Result<Duration> {
    let t0 = Instant::now();
    run_ok(cmd, what, PIPELINE_LIMIT)?;
    Ok(t0.elapsed())
}

fn mb_per_s(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / 1e6 / t.as_secs_f64()
}
