//! What the kernel says about a process: CPU time (all threads) and memory.

use anyhow::{anyhow, Context, Result};

/// CPU seconds (user + system, all threads) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    let ticks = parse_cpu_ticks(&stat).ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// utime + stime from the text of /proc/PID/stat (fields 14 and 15, counted after the
/// command name, which may itself hold spaces and parentheses).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Peak resident set size (VmHWM) of `pid`, in bytes.
pub fn peak_rss(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM:").map(|k| k * 1024)
}

/// Resident set size (VmRSS) of `pid`, in bytes.
pub fn rss(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:").map(|k| k * 1024)
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    parse_status_kib(&status, key).ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// sysconf(_SC_CLK_TCK): the unit of utime and stime.
fn clock_ticks_per_second() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf only reads a configuration value; it has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_an_awkward_name() {
        let stat = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_values() {
        let s = "Name:\tpcapd\nVmHWM:\t   12345 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_status_kib(s, "VmHWM:"), Some(12345));
        assert_eq!(parse_status_kib(s, "VmRSS:"), Some(2048));
        assert_eq!(parse_status_kib(s, "VmSwap:"), None);
    }

    #[test]
    fn this_process_is_readable() {
        let me = std::process::id();
        assert!(cpu_seconds(me).unwrap() >= 0.0);
        // RSS first: other tests of this process may allocate between the two reads.
        let now = rss(me).unwrap();
        assert!(now > 0);
        assert!(peak_rss(me).unwrap() >= now);
    }
}
