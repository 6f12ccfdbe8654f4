//! Every network namespace on the host, as `pcap netns` shows them: found through the
//! processes in /proc and the namespace files under /run/netns and /run/docker/netns, each
//! with its names, processes and interfaces (read from inside it).

use std::collections::BTreeMap;

use pcap_core::api::v1 as api;
use pcap_core::domain::Netns;

use super::proc::{netns_inode_of, pids, Process};
use super::NETNS_RUN_DIR;
use crate::capture::device;

/// Where namespace files are kept besides `ip netns`'s directory.
const NAMESPACE_DIRS: [&str; 2] = [NETNS_RUN_DIR, "/run/docker/netns"];

/// Every network namespace, pcapd's own first, then by inode, with the running
/// `containers` in theirs. Blocking.
pub fn namespaces(containers: &[crate::engines::Container]) -> Vec<api::Namespace> {
    let own = netns_inode_of(std::process::id());
    let mut by_inode: BTreeMap<u64, api::Namespace> = BTreeMap::new();
    fn entry(
        map: &mut BTreeMap<u64, api::Namespace>,
        inode: u64,
        own: Option<u64>,
    ) -> &mut api::Namespace {
        map.entry(inode).or_insert_with(|| api::Namespace {
            inode,
            own: Some(inode) == own,
            ..Default::default()
        })
    }
    for dir in NAMESPACE_DIRS {
        let Ok(files) = std::fs::read_dir(dir) else {
            continue;
        };
        for f in files.flatten() {
            let path = f.path();
            // Only nsfs files: a bind mount of a namespace shows its inode.
            let Ok((_, inode)) = super::open_file(&path) else {
                continue;
            };
            let ns = entry(&mut by_inode, inode, own);
            if dir == NETNS_RUN_DIR {
                ns.names.push(f.file_name().to_string_lossy().into_owned());
            }
            ns.paths.push(path.display().to_string());
        }
    }
    let boot = Boot::read();
    let mut all = pids();
    all.sort_unstable();
    for pid in all {
        let (Some(inode), Some(p)) = (netns_inode_of(pid), Process::get(pid)) else {
            continue;
        };
        let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end().to_owned())
            .unwrap_or_default();
        entry(&mut by_inode, inode, own)
            .processes
            .push(api::NamespaceProcess {
                pid,
                command,
                started_unix_ns: boot.unix_ns(p.start_time),
            });
    }
    for c in containers {
        let Some(inode) = c.pid.filter(|_| c.running).and_then(netns_inode_of) else {
            continue;
        };
        entry(&mut by_inode, inode, own)
            .containers
            .push(api::NamespaceContainer {
                runtime: c.runtime.to_string(),
                name: c.name.clone(),
                id: c.id.clone(),
            });
    }
    let mut out: Vec<api::Namespace> = by_inode.into_values().collect();
    for ns in &mut out {
        ns.interfaces = interfaces_of(ns).unwrap_or_default();
    }
    out.sort_by_key(|n| (!n.own, n.inode));
    out
}

/// A namespace's interfaces, read from inside it through something that holds it.
fn interfaces_of(ns: &api::Namespace) -> Option<Vec<api::Interface>> {
    if ns.own {
        return device::namespace_interfaces().ok();
    }
    let target = match (ns.paths.first(), ns.processes.first()) {
        (Some(path), _) => Netns::Path(path.clone()),
        (None, Some(p)) => Netns::Path(format!("/proc/{}/ns/net", p.pid)),
        (None, None) => return None,
    };
    super::run_in(&target, device::namespace_interfaces)
        .map(|(list, _)| list)
        .ok()
}

/// The boot time and clock tick, to turn a process's start time into a date.
struct Boot {
    unix_secs: i64,
    ticks_per_sec: i64,
}

impl Boot {
    fn read() -> Boot {
        let unix_secs = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        // The kernel's USER_HZ, which /proc reports start times in; 100 on Linux.
        Boot {
            unix_secs,
            ticks_per_sec: 100,
        }
    }

    fn unix_ns(&self, ticks: u64) -> i64 {
        let ticks = i64::try_from(ticks).unwrap_or(i64::MAX);
        self.unix_secs.saturating_mul(1_000_000_000).saturating_add(
            (ticks / self.ticks_per_sec) * 1_000_000_000
                + (ticks % self.ticks_per_sec) * (1_000_000_000 / self.ticks_per_sec),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapds_own_namespace_comes_first_with_this_process_in_it() {
        let all = namespaces(&[]);
        let own = all.first().expect("at least our own namespace");
        assert!(own.own);
        let me = std::process::id();
        let p = own
            .processes
            .iter()
            .find(|p| p.pid == me)
            .expect("this process is listed in its namespace");
        let now = pcap_core::parse::unix_ns(std::time::SystemTime::now());
        assert!(p.started_unix_ns > 0 && p.started_unix_ns <= now, "{p:?}");
        assert!(own.interfaces.iter().any(|i| i.name == "lo"), "{own:?}");
        assert!(all.iter().filter(|n| n.own).count() == 1);
    }
}
