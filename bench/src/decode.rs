//! `pcapd-bench decode`: decoding throughput and memory. A generated HTTP/1.1 + DNS
//! savefile is decoded by the library in this process, by `pcap decode --file --json`, and
//! by `tshark -r FILE -Y 'http or dns' -T fields -e frame.number` when tshark is installed;
//! the figures are printed as a Markdown table. Needs no root.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use pcap_decode::{DecodeConfig, Decoder, Packet};

use crate::http_dns::{self, CYCLE_PACKETS, CYCLE_ROUNDTRIPS};
use crate::packets::Generated;

/// Targets from the issue: throughput against tshark, and the CLI's peak RSS.
const SPEEDUP_TARGET: f64 = 20.0;
const RSS_TARGET: u64 = 100 << 20;

/// One way of decoding the file.
struct Figures {
    what: String,
    secs: f64,
    /// Roundtrips (or, for tshark, matching frames) it reported.
    count: u64,
    /// Peak resident set size in bytes, when measured.
    peak_rss: Option<u64>,
}

/// Generates `packets` packets in `dir`, decodes them every way, prints the table.
pub fn run(packets: u64, pcap_bin: &Path, dir: &Path) -> Result<()> {
    let file = dir.join("http_dns.pcap");
    eprintln!(
        "generating {packets} HTTP/1.1 and DNS packets in {}",
        file.display()
    );
    let generated = http_dns::write(&file, packets)?;
    let expected = generated.packets / CYCLE_PACKETS * CYCLE_ROUNDTRIPS;

    eprintln!("decoding with the library");
    let mut rows = vec![library(&file)?];
    eprintln!("decoding with pcap decode --file");
    rows.push(child(
        "`pcap decode --file FILE --json`",
        Command::new(pcap_bin)
            .args(["decode", "--json", "--file"])
            .arg(&file),
    )?);
    if which("tshark") {
        eprintln!("decoding with tshark");
        rows.push(child(
            "`tshark -r FILE -Y 'http or dns' -T fields -e frame.number`",
            Command::new("tshark").arg("-r").arg(&file).args([
                "-Y",
                "http or dns",
                "-T",
                "fields",
                "-e",
                "frame.number",
            ]),
        )?);
    } else {
        eprintln!("tshark is not installed: no comparison (apt-get install tshark)");
    }
    println!("{}", table(&generated, expected, &rows));
    Ok(())
}

/// The library alone, reading the file with libpcap, in this process.
fn library(file: &Path) -> Result<Figures> {
    let mut cap = pcap::Capture::from_file(file)
        .with_context(|| format!("libpcap cannot open {}", file.display()))?;
    let link_type = cap.get_datalink().0 as u32;
    let mut decoder = Decoder::new(DecodeConfig::default());
    let mut out = Vec::new();
    let mut count = 0u64;
    let mut seq = 0u64;
    let start = Instant::now();
    loop {
        let p = match cap.next_packet() {
            Ok(p) => p,
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => bail!("libpcap cannot read {}: {e}", file.display()),
        };
        seq += 1;
        let ts = &p.header.ts;
        let packet = Packet {
            link_type,
            ts_ns: ts.tv_sec * 1_000_000_000 + ts.tv_usec * 1_000,
            data: p.data,
            orig_len: p.header.len,
            seq,
        };
        decoder.push(&packet, &mut out);
        count += out.len() as u64;
        out.clear();
    }
    decoder.finish(&mut out);
    count += out.len() as u64;
    Ok(Figures {
        what: "pcap-decode library (libpcap reading)".into(),
        secs: start.elapsed().as_secs_f64(),
        count,
        peak_rss: None,
    })
}

/// A program whose output lines are counted; its peak RSS comes from wait4.
fn child(what: &str, cmd: &mut Command) -> Result<Figures> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {what}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let lines = thread::spawn(move || BufReader::new(stdout).split(b'\n').count() as u64);
    let (status, peak_rss) = wait4(child.id())?;
    let secs = start.elapsed().as_secs_f64();
    let count = lines.join().unwrap_or(0);
    if status != 0 {
        bail!("{what} failed (wait status {status})");
    }
    Ok(Figures {
        what: what.to_owned(),
        secs,
        count,
        peak_rss: Some(peak_rss),
    })
}

/// Waits for child `pid`; its wait status and peak RSS in bytes.
fn wait4(pid: u32) -> Result<(i32, u64)> {
    let mut status = 0;
    #[allow(unsafe_code)]
    // SAFETY: rusage is a plain C struct of integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    #[allow(unsafe_code)]
    // SAFETY: both pointers are to live, writable values of the types wait4 expects.
    let r = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    if r < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    // Linux reports ru_maxrss in KiB.
    Ok((status, u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024))
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// The Markdown table of the figures.
fn table(g: &Generated, expected: u64, rows: &[Figures]) -> String {
    let mb = g.file_bytes as f64 / 1e6;
    let mut t = format!(
        "Decoding {} packets ({mb:.1} MB, {expected} HTTP/1.1 and DNS roundtrips)\n\n\
         | decoder | seconds | packets/s | MB/s | peak RSS (MiB) | output |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |\n",
        g.packets
    );
    for r in rows {
        let rss = r.peak_rss.map_or("-".to_owned(), |b| {
            format!("{:.1}", b as f64 / f64::from(1 << 20))
        });
        t.push_str(&format!(
            "| {} | {:.2} | {:.0} | {:.1} | {rss} | {} |\n",
            r.what,
            r.secs,
            g.packets as f64 / r.secs,
            mb / r.secs,
            r.count
        ));
    }
    t.push('\n');
    let ours = &rows[0];
    let roundtrips = if ours.count == expected {
        "PASS"
    } else {
        "FAIL"
    };
    t.push_str(&format!(
        "- roundtrips found by the library: {} of {expected} ({roundtrips})\n",
        ours.count
    ));
    if let Some(cli) = rows.get(1) {
        if let Some(rss) = cli.peak_rss {
            let verdict = if rss < RSS_TARGET { "PASS" } else { "FAIL" };
            t.push_str(&format!(
                "- peak RSS of `pcap decode --file`: {:.1} MiB (target < 100 MiB: {verdict})\n",
                rss as f64 / f64::from(1 << 20)
            ));
        }
    }
    if let (Some(cli), Some(tshark)) = (rows.get(1), rows.get(2)) {
        for (name, r) in [("library", ours), ("pcap decode --file", cli)] {
            let speedup = tshark.secs / r.secs;
            let verdict = if speedup >= SPEEDUP_TARGET {
                "PASS"
            } else {
                "FAIL"
            };
            t.push_str(&format!(
                "- {name} against tshark: {speedup:.1}x (target >= {SPEEDUP_TARGET}x: {verdict})\n"
            ));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_file_is_what_libpcap_reads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.pcap");
        let g = http_dns::write(&file, 45).unwrap();
        assert_eq!(g.packets, 60, "whole cycles");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), g.file_bytes);
        let mut cap = pcap::Capture::from_file(&file).unwrap();
        let mut n = 0;
        while cap.next_packet().is_ok() {
            n += 1;
        }
        assert_eq!(n, 60);
    }

    #[test]
    fn the_table_has_a_row_per_decoder_and_the_verdicts() {
        let g = Generated {
            packets: 1000,
            file_bytes: 2_000_000,
        };
        let rows = [
            Figures {
                what: "lib".into(),
                secs: 0.01,
                count: 350,
                peak_rss: None,
            },
            Figures {
                what: "cli".into(),
                secs: 0.02,
                count: 350,
                peak_rss: Some(20 << 20),
            },
            Figures {
                what: "tshark".into(),
                secs: 1.0,
                count: 900,
                peak_rss: Some(200 << 20),
            },
        ];
        let t = table(&g, 350, &rows);
        assert!(
            t.contains("| lib | 0.01 | 100000 | 200.0 | - | 350 |"),
            "{t}"
        );
        assert!(t.contains("350 of 350 (PASS)"), "{t}");
        assert!(t.contains("20.0 MiB (target < 100 MiB: PASS)"), "{t}");
        assert!(t.contains("library against tshark: 100.0x"), "{t}");
        assert!(
            t.contains("pcap decode --file against tshark: 50.0x (target >= 20x: PASS)"),
            "{t}"
        );
    }
}
