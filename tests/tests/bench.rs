//! The benchmark program (`bench/`, `pcapd-bench`) still measures: a quick run with the
//! debug binaries prints every row of its table, and pcapd captured exactly the packets
//! tcpreplay sent (at 20,000 packets nothing may be dropped). The figures themselves are
//! not judged here; a benchmark prints them, a test does not assert a time.

use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;

const PACKETS: &str = "20000";

#[test]
fn a_quick_benchmark_run_prints_its_table_and_pcapd_misses_nothing() {
    if !require_root() {
        return;
    }
    // The bench binary is a workspace member, built beside pcapd and pcap.
    let dir = pcapd_bin().parent().expect("binary directory");
    let bench = dir.join("pcapd-bench");
    let out = run_bounded(
        Command::new(&bench)
            .args(["--packets", PACKETS, "--runs", "1", "--latency-secs", "1"])
            .args(["--captures", "20", "--stall-secs", "1", "--timeout", "100"])
            // The load figures (heavy mix, fixed rate, many captures) take minutes.
            .args(["--without", "heavy,cpu,captures,index"])
            .arg("--bin-dir")
            .arg(dir),
        "pcapd-bench (quick)",
        // Past its own --timeout, so that it cleans up itself first.
        Duration::from_secs(150),
    );
    let table = out.stdout_str();
    assert!(
        out.status.success(),
        "pcapd-bench failed ({}); stdout:\n{table}\nstderr:\n{}",
        out.status,
        out.stderr
    );
    let row = |name: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("| {name}")))
            .unwrap_or_else(|| panic!("no row {name:?} in the table:\n{table}"));
        line.trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_owned())
            .collect()
    };
    for name in [
        "capture: CPU µs per packet",
        "capture: peak RSS (MiB)",
        "capture: packets/s",
        "replay: `pcap replay ID \\| cat` (MB/s)",
        "replay streamed (`PCAP_NO_HANDOFF=1`",
        "replay: `tcpdump -r FILE -w - \\| cat` (MB/s)",
        "replay: `pcap replay ID \\| cat` ÷ `tcpdump",
        "listen latency p50 / p99 / max (ms)",
        "pcapd RSS idle",
        "pcapd RSS with a stalled reader",
    ] {
        let cells = row(name);
        assert_eq!(cells.len(), 6, "row {name:?} has 6 cells: {cells:?}");
        assert!(
            !cells[1].is_empty() && !cells[1].contains("NaN"),
            "row {name:?} has no figure: {cells:?}"
        );
    }
    assert_eq!(row("capture: packets sent (tcpreplay)")[1], PACKETS);
    assert_eq!(row("capture: packets captured (read back)")[1], PACKETS);
    let drops = row("capture: kernel drops");
    assert_eq!(drops[1], "0", "pcapd dropped packets: {drops:?}");
    assert_eq!(
        drops[5], "PASS",
        "pcapd missed packets: {drops:?}\n{}",
        out.stderr
    );
    let listened = row("listen: timed packets received / sent");
    let (got, sent) = listened[1].split_once(" / ").expect("received / sent");
    assert!(
        got.parse::<u64>().unwrap() > 0 && sent.parse::<u64>().unwrap() > 0,
        "pcap listen delivered nothing: {listened:?}"
    );
}

#[test]
fn a_quick_decode_benchmark_prints_its_table() {
    // No root needed: it decodes a generated file, beside tshark when installed.
    let dir = pcapd_bin().parent().expect("binary directory");
    let out = run_bounded(
        Command::new(dir.join("pcapd-bench"))
            .args(["decode", "--packets", "2000", "--timeout", "100"])
            .arg("--bin-dir")
            .arg(dir),
        "pcapd-bench decode (quick)",
        Duration::from_secs(150),
    );
    let table = out.stdout_str();
    assert!(
        out.status.success(),
        "pcapd-bench decode failed ({}); stdout:\n{table}\nstderr:\n{}",
        out.status,
        out.stderr
    );
    assert!(table.starts_with("Decoding 2000 packets"), "{table}");
    for row in [
        "| pcap-decode library",
        "| `pcap decode --file FILE --json` |",
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?}:\n{table}"));
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
        assert_eq!(cells.len(), 6, "{line}");
        assert_eq!(cells[5].trim(), "700", "every roundtrip decoded: {line}");
    }
    assert!(
        table.contains("roundtrips found by the library: 700 of 700 (PASS)"),
        "{table}"
    );
    assert!(
        table.contains("peak RSS of `pcap decode --file`"),
        "{table}"
    );
}
