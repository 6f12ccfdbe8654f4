//! Processes as /proc shows them: a pid with its start time (so that a reused pid is never
//! taken for the process it used to be), and which network namespace each is in.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Holder, NETNS_RUN_DIR};

/// A process, known by its pid and its start time (clock ticks after boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub start_time: u64,
}

impl From<Process> for pcap_core::domain::ProcessRef {
    fn from(p: Process) -> Self {
        pcap_core::domain::ProcessRef {
            pid: p.pid,
            start_time: p.start_time,
        }
    }
}

impl From<pcap_core::domain::ProcessRef> for Process {
    fn from(p: pcap_core::domain::ProcessRef) -> Self {
        Process {
            pid: p.pid,
            start_time: p.start_time,
        }
    }
}

impl Process {
    /// The process that has `pid` now.
    pub fn get(pid: u32) -> Option<Process> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(Process {
            pid,
            start_time: start_time(&stat)?,
        })
    }

    /// Whether this very process still runs (not a new one with the same pid). A zombie
    /// has left its namespace already.
    pub fn is_alive(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return false;
        };
        start_time(&stat) == Some(self.start_time) && state(&stat) != Some('Z')
    }

    /// The inode of the network namespace it is in.
    pub fn netns_inode(&self) -> Option<u64> {
        netns_inode_of(self.pid)
    }
}

/// Field 22 of /proc/PID/stat; the command (field 2) may hold spaces and parentheses, so
/// fields are counted after its last ')'.
fn start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn state(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// The inode of the network namespace process `pid` is in (from the `net:[N]` link).
pub fn netns_inode_of(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    link.to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The pid of a `/proc/PID/ns/net` path (or `/proc/PID/task/TID/ns/net`).
pub fn pid_of_ns_path(p: &str) -> Option<u32> {
    let rest = p.strip_prefix("/proc/")?;
    let (pid, tail) = rest.split_once('/')?;
    let ok = tail == "ns/net"
        || tail
            .strip_prefix("task/")
            .and_then(|t| t.split_once('/'))
            .is_some_and(|(tid, ns)| tid.parse::<u32>().is_ok() && ns == "ns/net");
    if !ok {
        return None;
    }
    pid.parse().ok()
}

/// Every running process's pid.
pub fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Something that holds the namespace with `inode` now: an `ip netns` name first, else the
/// oldest process in it.
pub fn holder_of(inode: u64) -> Option<Holder> {
    if let Ok(dir) = std::fs::read_dir(NETNS_RUN_DIR) {
        for e in dir.flatten() {
            let path: PathBuf = e.path();
            let same = std::fs::metadata(&path)
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m) == inode)
                .unwrap_or(false);
            if same {
                return Some(Holder::File(path));
            }
        }
    }
    let mut pids = pids();
    pids.sort_unstable();
    pids.into_iter()
        .filter(|&pid| netns_inode_of(pid) == Some(inode))
        .find_map(Process::get)
        .map(Holder::Process)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command() {
        let stat = "42 (a) weird (name)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    123456 1000 10";
        assert_eq!(start_time(stat), Some(123_456));
        assert_eq!(state(stat), Some('S'));
    }

    #[test]
    fn this_process_is_alive_and_in_a_namespace() {
        let me = Process::get(std::process::id()).expect("own stat");
        assert!(me.is_alive());
        assert!(me.netns_inode().is_some());
        let older = Process {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(
            !older.is_alive(),
            "a pid with another start time is another process"
        );
    }

    #[test]
    fn namespace_paths_of_processes_are_recognised() {
        assert_eq!(pid_of_ns_path("/proc/12/ns/net"), Some(12));
        assert_eq!(pid_of_ns_path("/proc/12/task/13/ns/net"), Some(12));
        assert_eq!(pid_of_ns_path("/proc/12/ns/mnt"), None);
        assert_eq!(pid_of_ns_path("/proc/self/ns/net"), None);
        assert_eq!(pid_of_ns_path("/run/netns/blue"), None);
    }
}
