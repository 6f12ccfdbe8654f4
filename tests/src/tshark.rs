//! Wireshark's reading of what pcap writes: `tshark -r` on a file or a pipe must decode
//! every packet without a complaint, and `capinfos` must find the file sound.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cli::{run_bounded, Output};

/// How long tshark or capinfos may take on one input.
const LIMIT: Duration = Duration::from_secs(120);

/// `tshark -n -r FILE EXTRA...`: asserts tshark reads the whole file without complaint and
/// returns its lines of output (one per packet unless `EXTRA` says otherwise).
pub fn tshark_file(path: &Path, extra: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(path).args(extra);
    let out = run_bounded(&mut cmd, "tshark -r FILE", LIMIT);
    assert_tshark_happy(&out, &path.display().to_string())
}

/// `tshark -n -r - EXTRA...` reading `input` (the stdout of another command): asserts tshark
/// reads all of it without complaint and returns its lines of output.
pub fn tshark_stdin(input: impl Into<Stdio>, extra: &[&str], what: &str) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r", "-"]).args(extra).stdin(input);
    let out = run_bounded(&mut cmd, "tshark -r -", LIMIT);
    assert_tshark_happy(&out, what)
}

/// How many packets tshark reads in `path`, asserting it reads them without complaint.
pub fn tshark_count(path: &Path) -> usize {
    tshark_file(path, &[]).len()
}

/// Asserts tshark exited 0, said nothing on stderr but its warning about running as root,
/// and decoded no packet as malformed; returns stdout's lines.
fn assert_tshark_happy(out: &Output, what: &str) -> Vec<String> {
    let complaints: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.contains("Running as user \"root\""))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "tshark reads {what} without errors ({}): {}",
        out.status,
        out.stderr
    );
    assert!(!out.stderr.contains("cut short"), "{what}: {}", out.stderr);
    let stdout = out.stdout_str();
    let malformed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("Malformed") || l.contains("Exception occurred"))
        .collect();
    assert!(
        malformed.is_empty(),
        "tshark found malformed packets in {what}: {malformed:?}"
    );
    stdout.lines().map(str::to_owned).collect()
}

/// `capinfos -M FILE`: asserts it reports no error and returns its "Number of packets".
pub fn capinfos_packets(path: &Path) -> u64 {
    let mut cmd = Command::new("capinfos");
    cmd.arg("-M").arg(path);
    let out = run_bounded(&mut cmd, "capinfos", LIMIT);
    let text = out.stdout_str();
    assert!(
        out.status.success() && out.stderr.trim().is_empty(),
        "capinfos {} reports an error ({}): {}{text}",
        path.display(),
        out.status,
        out.stderr
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Number of packets:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no packet count in capinfos output:\n{text}"))
}
