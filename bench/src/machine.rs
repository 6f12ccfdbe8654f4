//! What the figures were measured on: date, kernel, CPU, memory, tool versions, commit.

use std::process::Command;

/// A description of this machine and the code, as Markdown lines.
pub fn describe() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let first_line = |prog: &str, arg: &str| {
        Command::new(prog)
            .arg(arg)
            .output()
            .map(|o| {
                let text = [o.stdout, o.stderr].concat();
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    format!(
        "- date: {}\n- kernel: Linux {}\n- CPU: {model}, {cores} cores\n- memory: {:.1} GiB\n\
         - code: commit {commit}\n- tools: {}, {}\n",
        first_line("date", "-u"),
        kernel.trim(),
        mem_kib as f64 / (1024.0 * 1024.0),
        first_line("tcpdump", "--version"),
        first_line("tcpreplay", "-V"),
    )
}
