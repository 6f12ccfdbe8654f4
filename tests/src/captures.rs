//! What tests ask a daemon about its captures most often, through the real `pcap`:
//! define and start them, read `list --json`, wait for counters, replay, and look at the
//! spool segments on disk.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::Daemon;
use crate::savefile::{read_pcap, PcapFile};
use crate::wait::{eventually, DEFAULT_WAIT};

impl Daemon {
    /// `pcap init ARGS`; returns the id printed on the first line.
    pub fn init<S: AsRef<OsStr>>(&self, args: &[S]) -> u64 {
        let mut full: Vec<OsString> = vec!["init".into()];
        full.extend(args.iter().map(|a| a.as_ref().to_owned()));
        let out = self.ok(&full);
        let first = out.lines().next().unwrap_or("").trim();
        first
            .parse()
            .unwrap_or_else(|_| panic!("pcap init should print the id first, printed {out:?}"))
    }

    /// `pcap init ARGS` then `pcap start ID`, waiting until the capture is ACTIVE.
    pub fn init_started<S: AsRef<OsStr>>(&self, args: &[S]) -> u64 {
        let id = self.init(args);
        self.ok(&["start", &id.to_string()]);
        self.wait_state(id, "ACTIVE");
        id
    }

    /// `pcap --json list`, parsed.
    pub fn list(&self) -> Vec<Value> {
        match list_json(self) {
            Value::Array(v) => v,
            other => panic!("pcap --json list should print an array, printed {other}"),
        }
    }

    /// The listed capture with this id, if any.
    pub fn try_capture(&self, id: u64) -> Option<Value> {
        self.list()
            .into_iter()
            .find(|c| c["id"].as_u64() == Some(id))
    }

    /// The listed capture with this id.
    pub fn capture(&self, id: u64) -> Value {
        self.try_capture(id)
            .unwrap_or_else(|| panic!("capture {id} is not listed"))
    }

    /// The state of a capture as listed (`ACTIVE`, `PAUSED`, ...).
    pub fn state(&self, id: u64) -> String {
        let c = self.capture(id);
        c["state"]
            .as_str()
            .unwrap_or_else(|| panic!("no state in {c}"))
            .to_owned()
    }

    /// One of a capture's counters as listed.
    pub fn counter(&self, id: u64, name: &str) -> u64 {
        let c = self.capture(id);
        c["counters"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name} in {c}"))
    }

    /// Waits until a capture is in `state`.
    pub fn wait_state(&self, id: u64, state: &str) {
        let mut last = String::new();
        eventually(DEFAULT_WAIT, &format!("capture {id} to be {state}"), || {
            last = self.state(id);
            last == state
        });
    }

    /// Waits until a capture has spooled at least `n` packets; returns the capture.
    pub fn wait_spooled(&self, id: u64, n: u64) -> Value {
        let mut last = Value::Null;
        let what = format!("capture {id} to spool {n} packets");
        let deadline = Instant::now() + DEFAULT_WAIT;
        loop {
            last = self.try_capture(id).unwrap_or(last);
            if last["counters"]["spooled_packets"]
                .as_u64()
                .is_some_and(|s| s >= n)
            {
                return last;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last listed: {last}{}",
                if last["counters"]["received"].as_u64().unwrap_or(0) < n {
                    "\n(fewer packets received than expected: was the capture really capturing when \
                     the traffic was sent, that is, once `pcap start` returned / list said ACTIVE?)"
                } else {
                    ""
                }
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `pcap replay ARGS` to stdout, read back with libpcap.
    pub fn replay<S: AsRef<OsStr>>(&self, args: &[S]) -> PcapFile {
        let mut full: Vec<OsString> = vec!["replay".into()];
        full.extend(args.iter().map(|a| a.as_ref().to_owned()));
        let out = self.client().ok_bytes(&full);
        PcapFile::from_bytes(&out.stdout)
    }

    /// The spool directory of a capture: `<data>/captures/<id>`, or else the one directory
    /// under the data directory named after the id that holds segment files.
    pub fn spool_dir(&self, id: u64) -> PathBuf {
        let usual = self.data_dir().join("captures").join(id.to_string());
        if usual.is_dir() {
            return usual;
        }
        find_spool_dir(self.data_dir(), &id.to_string()).unwrap_or_else(|| {
            panic!(
                "no spool directory for capture {id} under {}",
                self.data_dir().display()
            )
        })
    }

    /// The segment files (`*.pcap`, `*.pcap.part`) of a capture, oldest first.
    pub fn segments(&self, id: u64) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.spool_dir(id))
            .expect("read spool dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| is_segment(p))
            .collect();
        v.sort();
        v
    }

    /// Reads every segment file of a capture with libpcap (each must be a valid savefile).
    pub fn read_segments(&self, id: u64) -> Vec<(PathBuf, PcapFile)> {
        self.segments(id)
            .into_iter()
            .map(|p| (p.clone(), read_pcap(&p)))
            .collect()
    }
}

/// `pcap --json list` against a daemon, parsed.
pub fn list_json(d: &Daemon) -> Value {
    let out = d.ok(&["--json", "list"]);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("pcap --json list printed bad JSON ({e}):\n{out}"))
}

fn is_segment(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".pcap") || name.ends_with(".pcap.part")
}

fn find_spool_dir(root: &Path, name: &str) -> Option<PathBuf> {
    for entry in fs::read_dir(root).ok()?.flatten() {
        let p = entry.path();
        if !p.is_dir() {
            continue;
        }
        let holds_segments = || {
            fs::read_dir(&p)
                .map(|mut r| r.any(|e| e.is_ok_and(|e| is_segment(&e.path()))))
                .unwrap_or(false)
        };
        if p.file_name().is_some_and(|n| n == name) && holds_segments() {
            return Some(p);
        }
        if let Some(found) = find_spool_dir(&p, name) {
            return Some(found);
        }
    }
    None
}

/// A capture's index -> interface name map, as `list --json` shows it.
pub fn interface_names(c: &Value) -> std::collections::BTreeMap<u32, String> {
    c["interface_names"]
        .as_object()
        .unwrap_or_else(|| panic!("interface_names is an object: {c}"))
        .iter()
        .map(|(i, n)| {
            (
                i.parse().expect("an index"),
                n.as_str().expect("a name").to_owned(),
            )
        })
        .collect()
}
