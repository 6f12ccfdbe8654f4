//! Listen latency: how long after a packet is sent its record comes out of `pcap listen`.
//! The sender (this program again, `pcapd-bench send-udp`, run inside the receiving
//! namespace) puts its CLOCK_REALTIME send time in each UDP payload; a thread here reads
//! the savefile stream from `pcap listen`'s stdout and notes when each record's bytes came
//! out of the pipe. Both clocks are the same system-wide clock.

use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};

use crate::daemon::{Bins, Pcapd};
use crate::guard::{self, run_ok, Proc};
use crate::netns::Lab;
use crate::savefile::RecordStream;
use crate::stats::latency_summary;

/// Marks the benchmark's timed payloads: 8 bytes, then the send time in ns (LE).
const MAGIC: &[u8; 8] = b"PCBENCH1";
/// UDP port of the latency traffic on `lo`.
pub const LATENCY_PORT: u16 = 47_001;

/// p50, p99 and max in milliseconds, and how many timed packets came out of the pipe.
#[derive(Debug, Clone, Copy)]
pub struct LatencyFigures {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub sent: u64,
    pub received: u64,
}

/// A capture of `udp port LATENCY_PORT` on `lo` in the receiving namespace, `pcap listen`
/// on it, and `pps` timed packets a second for `secs` seconds.
pub fn measure(
    bins: &Bins,
    lab: &Lab,
    pcapd: &Pcapd,
    pps: u64,
    secs: f64,
) -> Result<LatencyFigures> {
    let id = pcapd.init(&["lo", &format!("udp port {LATENCY_PORT}")])?;
    pcapd.pcap(&["start", &id.to_string()])?;
    pcapd.wait_state(id, "ACTIVE")?;

    let mut listen = Proc::spawn(
        pcapd
            .command()
            .args(["listen", &id.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        "pcap listen",
    )?;
    let mut pipe = listen.child().stdout.take().expect("piped stdout");
    let header = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let (h, n) = (header.clone(), count.clone());
    let reader = thread::spawn(move || -> Result<Vec<f64>> {
        let mut stream = RecordStream::default();
        let mut samples = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let len = match pipe.read(&mut buf) {
                Ok(0) | Err(_) => return Ok(samples),
                Ok(len) => len,
            };
            let now = realtime_ns();
            stream.feed(&buf[..len]);
            if stream.has_header()? {
                h.store(true, Ordering::SeqCst);
            }
            while let Some(rec) = stream.next_record()? {
                if let Some(sent) = sent_time(&rec) {
                    samples.push(now.saturating_sub(sent) as f64 / 1e6);
                    n.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    guard::wait_for(Duration::from_secs(15), "pcap listen to start", || {
        if let Some(s) = listen.try_wait()? {
            bail!("pcap listen exited ({s})");
        }
        Ok(header.load(Ordering::SeqCst))
    })?;

    let sent = send_in_namespace(bins, lab, LATENCY_PORT, pps, secs, 64)?;
    // Whatever is still on its way; then stop listening, which ends the reader.
    let _ = guard::wait_for(Duration::from_secs(2), "the last records", || {
        Ok(count.load(Ordering::SeqCst) >= sent)
    });
    drop(listen);
    let mut samples = reader
        .join()
        .map_err(|_| anyhow!("the listen reader panicked"))??;
    pcapd.pcap(&["stop", &id.to_string()])?;
    let received = samples.len() as u64;
    let (p50_ms, p99_ms, max_ms) =
        latency_summary(&mut samples).ok_or_else(|| anyhow!("pcap listen delivered no packet"))?;
    Ok(LatencyFigures {
        p50_ms,
        p99_ms,
        max_ms,
        sent,
        received,
    })
}

/// Runs `pcapd-bench send-udp` inside the receiving namespace to 127.0.0.1:`port`; the
/// number of packets it sent.
pub fn send_in_namespace(
    bins: &Bins,
    lab: &Lab,
    port: u16,
    pps: u64,
    secs: f64,
    size: usize,
) -> Result<u64> {
    let mut cmd = sender_command(bins, lab, port, pps, secs, size);
    let limit = Duration::from_secs_f64(secs + 30.0);
    let out = run_ok(&mut cmd, "pcapd-bench send-udp", limit)?;
    parse_sent(&out.stdout)
}

/// The sender's command line, to run it in the background.
pub fn sender_command(
    bins: &Bins,
    lab: &Lab,
    port: u16,
    pps: u64,
    secs: f64,
    size: usize,
) -> std::process::Command {
    let mut cmd = Lab::command(&lab.rx_ns, &bins.bench);
    cmd.args([
        "send-udp",
        "--port",
        &port.to_string(),
        "--pps",
        &pps.to_string(),
        "--secs",
        &secs.to_string(),
        "--size",
        &size.to_string(),
    ]);
    cmd
}

/// The count the sender printed (`sent N`).
pub fn parse_sent(stdout: &str) -> Result<u64> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("sent "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| anyhow!("the sender printed {stdout:?}, not `sent N`"))
}

/// The hidden `send-udp` subcommand: `pps` datagrams a second of `size` payload bytes to
/// 127.0.0.1:`port` for `secs` seconds, each stamped with its send time. A socket bound to
/// the port takes them in, so the kernel sends no port-unreachable errors back.
pub fn send_udp(port: u16, pps: u64, secs: f64, size: usize) -> Result<()> {
    let dst = SocketAddr::from(([127, 0, 0, 1], port));
    let _sink = UdpSocket::bind(dst).context("bind the sink socket")?;
    let sock = UdpSocket::bind("127.0.0.1:0").context("bind the sender socket")?;
    let total = (pps.max(1) as f64 * secs).round() as u64;
    let mut buf = vec![0u8; size.max(MAGIC.len() + 8)];
    buf[..8].copy_from_slice(MAGIC);
    let start = Instant::now();
    let mut sent = 0u64;
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / pps.max(1));
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        buf[8..16].copy_from_slice(&realtime_ns().to_le_bytes());
        if sock.send_to(&buf, dst).is_ok() {
            sent += 1;
        }
    }
    println!("sent {sent}");
    Ok(())
}

/// The send time stamped in a record's UDP payload, found by its marker.
fn sent_time(record: &[u8]) -> Option<u64> {
    let at = record.windows(MAGIC.len()).position(|w| w == MAGIC)?;
    let t = record.get(at + 8..at + 16)?;
    Some(u64::from_le_bytes(t.try_into().ok()?))
}

fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_send_time_behind_the_marker() {
        let mut rec = vec![0u8; 42];
        rec.extend_from_slice(MAGIC);
        rec.extend_from_slice(&123_456_789u64.to_le_bytes());
        assert_eq!(sent_time(&rec), Some(123_456_789));
        assert_eq!(sent_time(&rec[..50]), None);
        assert_eq!(sent_time(b"no marker here"), None);
        assert_eq!(parse_sent("sent 3000\n").unwrap(), 3000);
        assert!(parse_sent("oops").is_err());
    }
}
