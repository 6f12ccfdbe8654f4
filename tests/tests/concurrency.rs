//! Operations racing each other: several clients interleave start, stop, delete, re-init
//! and restart of one shared capture and of captures of their own, a few hundred times,
//! while UDP flows to all of them on loopback. Meanwhile `list` must answer within a second
//! every time. Afterwards every segment is a valid savefile (libpcap and tcpdump read it),
//! sequence numbers only increase and are never reused, no packet is spooled twice, and
//! each capture's counters say what its spool holds.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use pcapd_e2e::*;

/// UDP port of the capture every client works on.
const SHARED_PORT: u16 = 25201;
/// Client `i` has a capture of its own on port `OWN_PORT + i`.
const OWN_PORT: u16 = 25202;
const CLIENTS: u16 = 4;
/// Operations each client makes (fewer if the time runs out).
const OPS_PER_CLIENT: u32 = 150;
/// The clients stop when this time is up, done or not.
const OPS_TIME: Duration = Duration::from_secs(60);
/// Fewer operations than this in the time would not test much: the test says so.
const MIN_OPS: u32 = 100;
/// Packets per second of the traffic, spread over all ports, and the most it sends.
const PPS: u64 = 1000;
const MAX_PACKETS: u64 = 90_000;
/// Longest `list` may take, every time.
const LIST_LIMIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Init,
    Start,
    Stop,
    Restart,
    Delete,
}

/// What the clients saw: per operation, how it ended.
#[derive(Debug, Default)]
struct Tally {
    ok: BTreeMap<Op, u32>,
    not_found: BTreeMap<Op, u32>,
    unexpected: Vec<String>,
}

/// A small deterministic generator, so that a failing interleaving can be told apart.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn racing_operations_leave_valid_spools_and_counters_and_list_stays_quick() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let ports: Vec<u16> = std::iter::once(SHARED_PORT)
        .chain((0..CLIENTS).map(|i| OWN_PORT + i))
        .collect();
    d.init(&[
        "lo",
        &format!("udp port {SHARED_PORT}"),
        "--alias",
        "shared",
    ]);
    for i in 0..CLIENTS {
        d.init(&[
            "lo",
            &format!("udp port {}", OWN_PORT + i),
            "--alias",
            &format!("own{i}"),
        ]);
    }

    let done = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let tally = Mutex::new(Tally::default());
    let list_times: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
    let list_errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let started = Instant::now();
    let ops_done = AtomicU64::new(0);

    thread::scope(|s| {
        // Traffic: one UDP datagram per 1/PPS s, to each port in turn, with a sequence
        // number unique across all ports.
        s.spawn(|| {
            let _receivers: Vec<_> = ports
                .iter()
                .map(|&p| UdpSocket::bind(("127.0.0.1", p)).ok())
                .collect();
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind UDP sender");
            let start = Instant::now();
            for seq in 0..MAX_PACKETS {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let port = ports[(seq % ports.len() as u64) as usize];
                sock.send_to(&payload(seq, 64), ("127.0.0.1", port))
                    .expect("send UDP");
                sent.store(seq + 1, Ordering::Relaxed);
                let due = start + Duration::from_micros(seq * 1_000_000 / PPS);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
            }
        });

        // `list`, timed, again and again.
        let client = d.client().clone();
        s.spawn(|| {
            let client = client;
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                let out = client.run(&["--json", "list"]);
                let took = t.elapsed();
                list_times.lock().unwrap().push(took);
                let parsed = serde_json::from_slice::<serde_json::Value>(&out.stdout);
                if !out.status.success() || parsed.is_err() {
                    list_errors.lock().unwrap().push(format!(
                        "pcap --json list failed ({}) after {took:?}: {}",
                        out.status, out.stderr
                    ));
                }
            }
        });

        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let client = d.client().clone();
                let (tally, ops_done) = (&tally, &ops_done);
                s.spawn(move || {
                    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ (u64::from(i) + 1));
                    for _ in 0..OPS_PER_CLIENT {
                        if started.elapsed() >= OPS_TIME {
                            break;
                        }
                        // Mostly the shared capture, where clients race each other.
                        let (alias, port) = if rng.below(3) < 2 {
                            ("shared".to_owned(), SHARED_PORT)
                        } else {
                            (format!("own{i}"), OWN_PORT + i)
                        };
                        let op = match rng.below(20) {
                            0..=5 => Op::Start,
                            6..=11 => Op::Stop,
                            12..=15 => Op::Restart,
                            16 => Op::Delete,
                            _ => Op::Init,
                        };
                        run_op(&client, op, &alias, port, tally);
                        ops_done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client thread");
        }
        done.store(true, Ordering::Relaxed);
    });
    let ops_time = started.elapsed();

    let tally = tally.into_inner().unwrap();
    let mut list_times = list_times.into_inner().unwrap();
    list_times.sort();
    let ops = ops_done.load(Ordering::Relaxed);
    println!(
        "{ops} operations in {ops_time:?} while {} packets were sent; done: {:?}; not found: {:?}",
        sent.load(Ordering::Relaxed),
        tally.ok,
        tally.not_found
    );
    println!(
        "list answered {} times; median {:?}, max {:?}",
        list_times.len(),
        list_times.get(list_times.len() / 2),
        list_times.last()
    );
    let list_errors = list_errors.into_inner().unwrap();
    assert!(list_errors.is_empty(), "{}", list_errors.join("\n"));
    assert!(
        ops >= u64::from(MIN_OPS),
        "only {ops} operations in {OPS_TIME:?}: too few to race each other"
    );
    let slow: Vec<_> = list_times.iter().filter(|t| **t > LIST_LIMIT).collect();
    assert!(
        slow.is_empty(),
        "list took longer than {LIST_LIMIT:?} {} times of {}: {slow:?}",
        slow.len(),
        list_times.len()
    );

    // Everything still defined stops and stays stopped.
    d.ok(&["stop", "--all"]);
    let listed: BTreeMap<u64, serde_json::Value> = d
        .list()
        .into_iter()
        .map(|c| (c["id"].as_u64().expect("id"), c))
        .collect();
    for (id, c) in &listed {
        assert!(
            matches!(c["state"].as_str(), Some("PAUSED" | "PENDING")),
            "capture {id} after stop --all: {c}"
        );
    }

    // The spools on disk.
    let captures = d.data_dir().join("captures");
    let dirs: Vec<PathBuf> = fs::read_dir(&captures)
        .map(|r| r.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    let mut on_disk = BTreeSet::new();
    for dir in dirs.iter().filter(|p| p.is_dir()) {
        let id: u64 = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected entry {} in the spool", dir.display()));
        on_disk.insert(id);
        let spool = check_spool(dir);
        println!(
            "capture {id}: {} segments, {} packets, {} bytes",
            spool.segments, spool.packets, spool.bytes
        );
        let Some(c) = listed.get(&id) else {
            // A deleted capture's spool is gone with it, not left half-deleted.
            assert_eq!(
                spool.segments,
                0,
                "capture {id} was deleted but {} still holds segments",
                dir.display()
            );
            continue;
        };
        let counter = |name: &str| {
            c["counters"][name]
                .as_u64()
                .unwrap_or_else(|| panic!("no counter {name} in {c}"))
        };
        assert_eq!(counter("expired_packets"), 0, "nothing expires here: {c}");
        assert_eq!(
            counter("spooled_packets"),
            spool.packets,
            "capture {id}'s spooled_packets counter and its spool disagree: {c}"
        );
        assert_eq!(
            counter("spool_bytes"),
            spool.bytes,
            "capture {id}'s spool_bytes counter and the size of its segments disagree: {c}"
        );
        assert_eq!(
            counter("spool_segments"),
            spool.segments,
            "capture {id}'s spool_segments counter and its directory disagree: {c}"
        );
    }
    assert!(
        listed
            .values()
            .any(|c| c["counters"]["spooled_packets"].as_u64() > Some(0)),
        "no capture that spooled packets survived the race, so there was nothing to check: \
         {listed:?}"
    );
    for (id, c) in &listed {
        if !on_disk.contains(id) {
            assert_eq!(
                c["counters"]["spooled_packets"], 0,
                "capture {id} counts packets but has no spool: {c}"
            );
        }
    }
    let log = d.log();
    assert!(!log.contains("panicked"), "pcapd panicked:\n{log}");
    // Last, so that what the spools show is checked (and reported) first.
    assert!(
        tally.unexpected.is_empty(),
        "operations failed in unexpected ways:\n{}",
        tally.unexpected.join("\n")
    );
}

/// Runs one operation on the capture named `alias` (filter `udp port PORT`) and notes how it
/// ended. Only "no such capture" (it was just deleted by another client) is expected to fail.
fn run_op(client: &Pcap, op: Op, alias: &str, port: u16, tally: &Mutex<Tally>) {
    let filter = format!("udp port {port}");
    let steps: Vec<Vec<&str>> = match op {
        Op::Init => vec![vec!["init", "lo", &filter, "--alias", alias]],
        Op::Start => vec![vec!["start", alias]],
        Op::Stop => vec![vec!["stop", alias]],
        Op::Restart => vec![vec!["stop", alias], vec!["start", alias]],
        Op::Delete => vec![vec!["delete", alias]],
    };
    for args in steps {
        let out = client.run(&args);
        let mut t = tally.lock().unwrap();
        if out.status.success() {
            *t.ok.entry(op).or_default() += 1;
            continue;
        }
        let what = format!("pcap {}", args.join(" "));
        let lower = out.stderr.to_lowercase();
        let handled = out.status.code().is_some_and(|c| c != 101)
            && !out.stderr.contains("panicked")
            && !out.stderr.trim().is_empty();
        let not_found = ["unknown", "no capture", "not found", "no such"]
            .iter()
            .any(|w| lower.contains(w))
            && has_word(&out.stderr, alias);
        if handled && not_found {
            *t.not_found.entry(op).or_default() += 1;
            // The rest of a restart has nothing to act on.
            return;
        }
        t.unexpected
            .push(format!("{what} ({}): {}", out.status, out.stderr.trim()));
        return;
    }
}

/// What one capture's spool directory holds.
struct Spool {
    segments: u64,
    packets: u64,
    bytes: u64,
}

/// Reads every segment of a spool with libpcap and tcpdump, and checks that the sequence
/// numbers in the names only increase, never overlapping the previous segment's packets,
/// and that no datagram of the test's traffic is spooled twice or out of order.
fn check_spool(dir: &Path) -> Spool {
    let mut segments: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .expect("read spool dir")
        .map(|e| e.expect("entry").path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let digits = name
                .strip_suffix(".pcap.part")
                .or_else(|| name.strip_suffix(".pcap"))?;
            (digits.len() == 20)
                .then(|| digits.parse().ok())
                .flatten()
                .map(|seq| (seq, p))
        })
        .collect();
    segments.sort();
    let mut spool = Spool {
        segments: segments.len() as u64,
        packets: 0,
        bytes: 0,
    };
    let mut next_seq: Option<(u64, &Path)> = None;
    let mut last_payload: Option<u64> = None;
    for (first_seq, path) in &segments {
        let f = read_pcap(path);
        let n = f.packets.len() as u64;
        if let Some(count) = tcpdump_count(path) {
            assert_eq!(
                count as u64,
                n,
                "tcpdump and libpcap agree on {}",
                path.display()
            );
        }
        if let Some((next, prev)) = next_seq {
            assert!(
                *first_seq >= next,
                "{} starts at sequence number {first_seq}, but {} already holds up to {}: \
                 sequence numbers were reused",
                path.display(),
                prev.display(),
                next - 1
            );
        }
        next_seq = Some((first_seq + n, path));
        for p in &f.packets {
            let Some(seq) = p.udp(f.link_type).and_then(|u| payload_seq(u.payload)) else {
                continue;
            };
            if let Some(last) = last_payload {
                assert!(
                    seq > last,
                    "{}: datagram {seq} follows datagram {last}: spooled twice or out of order",
                    path.display()
                );
            }
            last_payload = Some(seq);
        }
        spool.packets += n;
        spool.bytes += fs::metadata(path).expect("segment metadata").len();
    }
    spool
}
