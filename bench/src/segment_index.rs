//! `pcapd-bench index`: what the segment index saves a selective replay. A generated file
//! of at least 2 GB (thirds of 64, 512 and 1500-byte UDP frames; each 64 MiB stretch from
//! its own 1,024 hosts) is imported into a fresh pcapd, whose spool then holds it as
//! 64 MiB segments. Host H1 sends 100 packets in the middle of one segment; H0 none at all.
//! Timed, each the median of `runs`, with the spool in the page cache:
//! `pcap replay ID | cat` (every packet, the segment files handed over), the same with
//! `PCAP_NO_HANDOFF=1` (streamed, the way a filtered replay reads), `pcap replay ID
//! --filter 'host H' | cat` for both hosts, and how long `pcap replay ID --since T` takes
//! to its first packet record, T being three quarters of the way through the spool.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::daemon::{Bins, Pcapd};
use crate::guard::run_ok;
use crate::savefile::{segments, total_bytes};
use crate::stats::median;

/// Targets (issue #14).
const SKIP_RATIO_MIN: f64 = 50.0;
const SINCE_FIRST_RECORD_MAX_MS: f64 = 100.0;

/// The spool's segment size (the largest pcapd makes).
const SEGMENT: u64 = 64 << 20;
const FRAME_SIZES: [usize; 3] = [64, 512, 1500];
const H1: [u8; 4] = [10, 200, 0, 1];
const H0: [u8; 4] = [10, 201, 0, 1];
const H1_PACKETS: u64 = 100;
const PIPELINE_LIMIT: Duration = Duration::from_secs(600);

/// What one measurement gave.
#[derive(Debug, Clone)]
pub struct IndexFigures {
    pub spool_bytes: u64,
    pub segments: usize,
    /// Every packet, the segment files handed over to `pcap`.
    pub full_secs: f64,
    /// Every packet, streamed by pcapd (as a filtered replay is).
    pub full_streamed_secs: f64,
    /// With H1 (in one segment) and H0 (in none).
    pub h1_secs: f64,
    pub h0_secs: f64,
    pub since_first_record_ms: f64,
}

/// Generates the file, imports it into a fresh pcapd in `dir` and times the replays.
pub fn run(bins: &Bins, dir: &Path, size_mb: u64, runs: u32) -> Result<IndexFigures> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join("traffic.pcap");
    eprintln!("generating {size_mb} MB in {}", file.display());
    let (first_ts, last_ts) = generate(&file, size_mb * 1_000_000)?;
    let pcapd = Pcapd::start_here_with(
        bins,
        &dir.join("pcapd"),
        &format!("default_max_size = \"{}M\"\n", size_mb * 2),
    )?;
    eprintln!("importing it");
    let out = run_ok(
        pcapd.command().args(["--json", "import"]).arg(&file),
        "pcap import",
        PIPELINE_LIMIT,
    )?;
    std::fs::remove_file(&file)?;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).context("pcap --json import")?;
    let id = v["id"]
        .as_u64()
        .context("pcap --json import printed no id")?;
    let segs = segments(&pcapd.spool_dir(id))?;
    let spool_bytes = total_bytes(&segs)?;
    let mut warm = pcapd.shell_beside(r#"cat "$@" > /dev/null"#);
    warm.args(&segs);
    run_ok(&mut warm, "cat SEGMENTS", PIPELINE_LIMIT)?;

    let replay = |filter: Option<[u8; 4]>, streamed: bool| -> Result<f64> {
        let mut c = match filter {
            None => pcapd.shell_beside(r#""$PCAP" replay "$1" | cat > /dev/null"#),
            Some(_) => pcapd.shell_beside(r#""$PCAP" replay "$1" --filter "$2" | cat > /dev/null"#),
        };
        c.arg(id.to_string());
        if streamed {
            c.env("PCAP_NO_HANDOFF", "1");
        }
        if let Some([a, b, c3, d]) = filter {
            c.arg(format!("host {a}.{b}.{c3}.{d}"));
        }
        let t0 = Instant::now();
        run_ok(&mut c, "pcap replay | cat", PIPELINE_LIMIT)?;
        Ok(t0.elapsed().as_secs_f64())
    };
    let since_ns = first_ts + (last_ts - first_ts) * 3 / 4;
    let since = format!(
        "{}.{:09}",
        since_ns / 1_000_000_000,
        since_ns % 1_000_000_000
    );
    let (mut full, mut streamed, mut h1, mut h0, mut first) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 1..=runs {
        eprintln!("timing replays, run {i} of {runs}");
        full.push(replay(None, false)?);
        streamed.push(replay(None, true)?);
        h1.push(replay(Some(H1), false)?);
        h0.push(replay(Some(H0), false)?);
        first.push(first_record_ms(&pcapd, id, &since)?);
        let ms = |v: &[f64]| v.last().map_or(f64::NAN, |s| s * 1000.0);
        eprintln!(
            "  full {:.0} ms, streamed {:.0} ms, H1 {:.1} ms, H0 {:.1} ms, --since {:.1} ms",
            ms(&full),
            ms(&streamed),
            ms(&h1),
            ms(&h0),
            first.last().copied().unwrap_or(f64::NAN)
        );
    }
    let figures = IndexFigures {
        spool_bytes,
        segments: segs.len(),
        full_secs: median(&full).unwrap_or(f64::NAN),
        full_streamed_secs: median(&streamed).unwrap_or(f64::NAN),
        h1_secs: median(&h1).unwrap_or(f64::NAN),
        h0_secs: median(&h0).unwrap_or(f64::NAN),
        since_first_record_ms: median(&first).unwrap_or(f64::NAN),
    };
    pcapd.shutdown()?;
    Ok(figures)
}

/// The figures as Markdown table rows, with the targets.
pub fn report(f: &IndexFigures) -> String {
    let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let mut s = String::from(
        "| figure | pcapd | full replay | ratio | target | result |\n|---|---|---|---|---|---|\n",
    );
    s += &format!(
        "| spool | {:.2} GB in {} segments | | | at least 2 GB | {} |\n",
        f.spool_bytes as f64 / 1e9,
        f.segments,
        pass(f.spool_bytes >= 2_000_000_000)
    );
    for (what, secs) in [
        ("replay --filter 'host H', H in 1 segment", f.h1_secs),
        ("replay --filter 'host H', H in none", f.h0_secs),
    ] {
        for (full, how) in [
            (
                f.full_streamed_secs,
                "÷ full replay streamed, as filtered ones are",
            ),
            (f.full_secs, "÷ full replay, segment files handed over"),
        ] {
            let ratio = full / secs;
            s += &format!(
                "| {what}, {how} | {:.0} ms | {:.0} ms | {ratio:.0}× faster | ≥ {SKIP_RATIO_MIN:.0}× | {} |\n",
                secs * 1000.0,
                full * 1000.0,
                pass(ratio >= SKIP_RATIO_MIN)
            );
        }
    }
    s += &format!(
        "| replay --since (last quarter): first packet record | {:.1} ms | | | ≤ {SINCE_FIRST_RECORD_MAX_MS:.0} ms | {} |\n",
        f.since_first_record_ms,
        pass(f.since_first_record_ms <= SINCE_FIRST_RECORD_MAX_MS)
    );
    s
}

/// Time from starting `pcap replay ID --since T` to reading its first packet record (the
/// 24-byte file header and a 16-byte record header).
fn first_record_ms(pcapd: &Pcapd, id: u64, since: &str) -> Result<f64> {
    let t0 = Instant::now();
    let mut child = pcapd
        .command()
        .args(["replay", &id.to_string(), "--since", since])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start pcap replay --since")?;
    let mut head = [0u8; 40];
    let read = child
        .stdout
        .as_mut()
        .context("pcap's output")?
        .read_exact(&mut head);
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = read {
        bail!("pcap replay --since {since} gave no packet: {e}");
    }
    Ok(ms)
}

/// Writes at least `bytes` of Ethernet/IPv4/UDP frames as a microsecond pcap file; returns
/// the first and last packet times (unix nanoseconds).
fn generate(path: &Path, bytes: u64) -> Result<(i64, i64)> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut header = Vec::new();
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&[0u8; 8]);
    header.extend_from_slice(&262_144u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    w.write_all(&header)?;
    let start_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as i64
        - 3_600_000_000;
    let (mut written, mut i, mut h1_left) = (24u64, 0u64, H1_PACKETS);
    // H1 in the middle of one segment: well inside it whatever the records' sizes.
    let h1_at = SEGMENT * 10 + SEGMENT / 2;
    let mut frame = vec![0u8; 1500];
    while written < bytes || h1_left > 0 {
        let size = FRAME_SIZES[(i % 3) as usize];
        let stretch = (written / SEGMENT) as u8;
        let src = if written >= h1_at && h1_left > 0 {
            h1_left -= 1;
            H1
        } else {
            let h = (i / 7) % 1024;
            [10, stretch, (h / 256) as u8, (h % 256) as u8]
        };
        let dst = [10, 250, 0, (i % 16) as u8 + 1];
        let ports = (1024 + (i % 1000) as u16, [53u16, 80, 443][(i % 3) as usize]);
        udp_frame(&mut frame[..size], src, dst, ports);
        let ts = start_us + i as i64;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(size as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(size as u32).to_le_bytes());
        w.write_all(&rec)?;
        w.write_all(&frame[..size])?;
        written += 16 + size as u64;
        i += 1;
    }
    w.flush()?;
    Ok((start_us * 1000, (start_us + i as i64 - 1) * 1000))
}

fn udp_frame(f: &mut [u8], src: [u8; 4], dst: [u8; 4], (sport, dport): (u16, u16)) {
    let len = f.len();
    f.fill(0);
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let udp = &mut ip[20..];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&((len - 34) as u16).to_be_bytes());
}

/// How the index figure is made, for the written page.
pub fn describe() -> String {
    "- **Spool**: a generated file of 2.2 GB (Ethernet/IPv4/UDP frames of 64, 512 and 1500 \
     bytes in turn, each 64 MiB stretch from 1,024 hosts of its own /16, to 16 \
     destinations) imported with `pcap import` into a fresh pcapd whose `default_max_size` is \
     twice that, so its spool is 64 MiB segments (the largest pcapd makes, hence 33 of them \
     rather than 20) with their indexes. Host H1 sends 100 packets in the middle of the 11th \
     segment; H0 sends none.\n\
     - **Timed**: `pcap replay ID | cat > /dev/null` (every packet, the \"full replay\": pcapd \
     hands `pcap` the segment files), the same with `PCAP_NO_HANDOFF=1` (streamed by pcapd, \
     the way a filtered replay is read), and `pcap replay ID --filter 'host H1'` and \
     `--filter 'host H0'`, as `bash -c` pipelines \
     with pipefail, after an untimed `cat` of every segment; the ratio is full / filtered. \
     `--since`: from starting `pcap replay ID --since T` (T three quarters through the \
     spool's time) to reading its 24-byte file header and first 16-byte record header from \
     the pipe.\n"
        .to_owned()
}
