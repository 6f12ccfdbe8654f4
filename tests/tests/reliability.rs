//! What pcapd survives without losing what it promised to keep: a kill -9 under a loopback
//! blast, a reader that stops reading, and a reader that vanishes mid-stream.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pcapd_e2e::*;

/// First sequence number of packets sent only to learn that a listener is connected.
const WARM_UP: u64 = 1_000_000;
/// First sequence number of packets sent after the main traffic.
const TAIL: u64 = 2_000_000;
/// Bytes in one pcap record of a UDP packet with `payload` bytes of payload on `lo`
/// (record header, Ethernet, IPv4, UDP).
const fn record_bytes(payload: usize) -> u64 {
    (16 + 14 + 20 + 8 + payload) as u64
}

#[test]
fn kill_9_under_a_loopback_blast_keeps_valid_segments_and_loses_at_most_a_second() {
    const PORT: u16 = 24102;
    const TOTAL: u64 = 3_000_000;
    const PAYLOAD: usize = 100;
    /// How long the blast runs before pcapd is killed.
    const KILL_AFTER: Duration = Duration::from_millis(2500);
    /// Packets sent this long before the kill may be lost ("about a second").
    const LOSS_WINDOW: Duration = Duration::from_millis(1500);
    if !require_root() {
        return;
    }
    let mut d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}")]);

    let blast = Blast::start(PORT, TOTAL, PAYLOAD);
    eventually(DEFAULT_WAIT, "the blast to run a while", || {
        blast.elapsed() >= KILL_AFTER || blast.finished()
    });
    let spooled_before = d.counter(id, "spooled_packets");
    let dropped_before = d.counter(id, "dropped_kernel");
    let killed_at = Instant::now();
    let sent_at_kill = blast.sent();
    let blasted = blast.elapsed();
    d.kill();
    let sent_window = sent_at_kill - blast.sent_at(killed_at - LOSS_WINDOW);
    assert!(
        !blast.finished(),
        "the blast ended before pcapd was killed: make it longer"
    );
    let sent_total = blast.stop();
    let rate = sent_at_kill as f64 / blasted.as_secs_f64();

    d.start_again();
    d.wait_state(id, "ACTIVE");
    let c = d.capture(id);
    assert_eq!(
        c["filter"],
        format!("udp port {PORT}"),
        "registry intact: {c}"
    );

    // Nothing matches the filter now, so no segment is being written to.
    let files: Vec<String> = fs::read_dir(d.spool_dir(id))
        .expect("spool dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    println!("spool after the restart: {files:?}");
    let mut on_disk = 0;
    for (path, f) in d.read_segments(id) {
        let n = tshark_count(&path);
        assert_eq!(
            n,
            f.packets.len(),
            "tshark and libpcap agree on {}",
            path.display()
        );
        on_disk += n;
    }

    let replayed = replay_through_tshark(&d, id);
    let survived = d.replay(&[id.to_string()]);
    assert_eq!(
        replayed,
        survived.packets.len(),
        "tshark reads the whole replay"
    );
    assert_eq!(
        on_disk,
        survived.packets.len(),
        "replay is what the segments hold"
    );
    let seqs = survived.seqs_to(PORT);
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "the spool holds packets in order, each once"
    );
    let kept = seqs.len() as u64;
    let lost = sent_at_kill.saturating_sub(kept);
    println!(
        "kill -9 after {blasted:?} of blast at ~{rate:.0} packets/s: sent {sent_at_kill} before the \
         kill ({sent_total} in all), {sent_window} of them in the last {LOSS_WINDOW:?}; pcapd had \
         listed {spooled_before} spooled and {dropped_before} dropped by the kernel; the spool kept \
         {kept} after the restart: {lost} lost ({:.2} s of traffic)",
        lost as f64 / rate
    );
    assert!(
        kept + sent_window >= sent_at_kill,
        "at most about a second of packets may be lost to kill -9: sent {sent_at_kill} before the \
         kill, kept {kept}, allowed to lose {sent_window}"
    );

    // The capture goes on after the crash, appending to what survived.
    let listed = d.counter(id, "spooled_packets");
    println!("spooled_packets listed after the restart: {listed}");
    send_udp_seq(PORT, TAIL..TAIL + 1000, PAYLOAD);
    d.wait_spooled(id, listed + 1000);
    d.ok(&["stop", &id.to_string()]);
    d.wait_state(id, "PAUSED");
    let grown = d.replay(&[id.to_string()]).seqs_to(PORT);
    let expected: Vec<u64> = seqs.iter().copied().chain(TAIL..TAIL + 1000).collect();
    assert_eq!(grown, expected, "new packets follow the ones that survived");
    let mut on_disk = 0;
    for (path, f) in d.read_segments(id) {
        assert_eq!(tshark_count(&path), f.packets.len());
        on_disk += f.packets.len();
    }
    assert_eq!(
        on_disk,
        grown.len(),
        "segments hold exactly what replay returns"
    );
    // The counters are not lost with the process either: they count at least what the
    // spool holds.
    assert!(
        listed >= kept,
        "after the crash, list counts at least the {kept} packets the spool holds, not {listed}"
    );
}

#[test]
fn a_stalled_listener_loses_only_its_own_packets_and_daemon_memory_stays_flat() {
    const PORT: u16 = 24104;
    const N: u64 = 100_000;
    const PAYLOAD: usize = 1000;
    /// What a stalled reader may cost the daemon at most.
    const RSS_GROWTH_LIMIT: u64 = 64 << 20;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let pid = d.pid() as i32;
    let id = d.init_started(&["lo", &format!("udp port {PORT}")]);

    let good_out = d.dir().join("good.pcap");
    let mut good = d.spawn_to_file(&["listen", &id.to_string()], &good_out);
    let (mut stalled, first) = stalled_listener(&d, id);
    let warm_sent = warm_up(PORT, PAYLOAD, "both listeners to have packets", || {
        first.is_finished() && PcapFile::count_in(&good_out) > 0
    });
    let (pipe, mut stalled_bytes) = first.join().expect("stalled reader thread");
    d.wait_spooled(id, warm_sent);
    let rss_before = vm_rss(pid);

    let mut rss_during = rss_before;
    for chunk in (0..N).step_by(10_000) {
        send_udp_seq(PORT, chunk..chunk + 10_000, PAYLOAD);
        rss_during = rss_during.max(vm_rss(pid));
    }
    d.wait_spooled(id, warm_sent + N);
    eventually(
        Duration::from_secs(60),
        "the good listener to catch up",
        || {
            rss_during = rss_during.max(vm_rss(pid));
            last_seq(&good_out, record_bytes(PAYLOAD)) == Some(N - 1)
        },
    );
    rss_during = rss_during.max(vm_rss(pid));
    assert!(
        stalled.try_status().is_none(),
        "the stalled listener is still there: {}",
        stalled.stderr()
    );
    assert_eq!(d.state(id), "ACTIVE");
    let c = d.capture(id);
    assert_eq!(
        c["counters"]["dropped_kernel"], 0,
        "the capture itself dropped nothing: {c}"
    );

    // Now it reads again; it hears of the gap with the next packets after it.
    let rest = spawn_pipe_reader(pipe, None);
    let mut tail = TAIL;
    eventually(
        DEFAULT_WAIT,
        "the stalled listener to be told it skipped packets",
        || {
            if stalled.stderr().contains("skipped") {
                return true;
            }
            send_udp_seq(PORT, tail..tail + 10, PAYLOAD);
            tail += 10;
            false
        },
    );
    d.ok(&["stop", &id.to_string()]);
    for (name, r) in [("good", &mut good), ("stalled", &mut stalled)] {
        let status = r.wait(DEFAULT_WAIT);
        assert!(
            status.success(),
            "the {name} listener ends cleanly: {}",
            r.stderr()
        );
    }
    let rss_after = vm_rss(pid);
    stalled_bytes.extend(rest.join().expect("stalled reader thread").1);

    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!(
        "daemon VmRSS: {:.1} MiB before, {:.1} MiB at most while a listener was stalled ({} packets \
         of {PAYLOAD} bytes sent), {:.1} MiB after",
        mib(rss_before),
        mib(rss_during),
        N,
        mib(rss_after)
    );

    let main = |seqs: Vec<u64>| -> Vec<u64> { seqs.into_iter().filter(|&s| s < N).collect() };
    let good_file = read_pcap(&good_out);
    assert_eq!(
        main(good_file.seqs_to(PORT)),
        (0..N).collect::<Vec<_>>(),
        "the listener that kept up has every packet, once, in order"
    );
    let spool = d.replay(&[id.to_string()]);
    let spooled_seqs = spool.seqs_to(PORT);
    assert_eq!(
        main(spooled_seqs.clone()),
        (0..N).collect::<Vec<_>>(),
        "the spool has every packet"
    );

    let stderr = stalled.stderr();
    let skipped = skipped_told(&stderr);
    let got = PcapFile::from_bytes(&stalled_bytes).seqs_to(PORT);
    println!(
        "stalled listener: {} packets received, {skipped} skipped as told on stderr:\n{stderr}",
        got.len()
    );
    assert!(
        skipped > 0,
        "the stalled listener is told it skipped packets: {stderr}"
    );
    // Every packet spooled between its first and its last is either received or counted.
    let (first, last) = positions(&spooled_seqs, &got);
    assert_eq!(
        got.len() as u64 + skipped,
        (last - first + 1) as u64,
        "received + skipped = everything spooled while it listened"
    );
    assert!(
        rss_during.saturating_sub(rss_before) <= RSS_GROWTH_LIMIT,
        "daemon memory grows by at most {} MiB while a listener is stalled: {:.1} -> {:.1} MiB",
        RSS_GROWTH_LIMIT >> 20,
        mib(rss_before),
        mib(rss_during)
    );
}

#[test]
fn a_listener_that_fell_behind_is_told_what_it_missed_even_when_the_capture_stops() {
    const PORT: u16 = 24107;
    const N: u64 = 60_000;
    const PAYLOAD: usize = 1000;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}")]);
    let (mut stalled, first) = stalled_listener(&d, id);
    let warm_sent = warm_up(PORT, PAYLOAD, "the listener to have packets", || {
        first.is_finished()
    });
    let (pipe, mut stalled_bytes) = first.join().expect("stalled reader thread");
    send_udp_seq(PORT, 0..N, PAYLOAD);
    d.wait_spooled(id, warm_sent + N);

    // The capture stops while the listener is still behind; then it reads everything.
    d.ok(&["stop", &id.to_string()]);
    d.wait_state(id, "PAUSED");
    let rest = spawn_pipe_reader(pipe, None);
    let status = stalled.wait(DEFAULT_WAIT);
    assert!(
        status.success(),
        "the listener ends cleanly: {}",
        stalled.stderr()
    );
    stalled_bytes.extend(rest.join().expect("stalled reader thread").1);

    let spooled_seqs = d.replay(&[id.to_string()]).seqs_to(PORT);
    let stderr = stalled.stderr();
    let skipped = skipped_told(&stderr);
    let got = PcapFile::from_bytes(&stalled_bytes).seqs_to(PORT);
    let (first, _) = positions(&spooled_seqs, &got);
    let owed = (spooled_seqs.len() - first) as u64;
    println!(
        "listener behind when the capture stopped: {} received, {skipped} skipped as told, {owed} \
         spooled from its first packet to the end; stderr:\n{stderr}",
        got.len()
    );
    assert_eq!(
        got.len() as u64 + skipped,
        owed,
        "every packet spooled while it listened is received or told as skipped, the last ones \
         included"
    );
}

#[test]
fn a_listener_killed_mid_stream_frees_its_resources_and_others_lose_nothing() {
    const PORT: u16 = 24105;
    const N: u64 = 20_000;
    const PAYLOAD: usize = 200;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let pid = d.pid() as i32;
    let id = d.init_started(&["lo", &format!("udp port {PORT}")]);

    let good_out = d.dir().join("good.pcap");
    let mut good = d.spawn_to_file(&["listen", &id.to_string()], &good_out);
    let mut warm_sent = warm_up(PORT, PAYLOAD, "the first listener to have packets", || {
        PcapFile::count_in(&good_out) > 0
    });
    let (fds_before, threads_before) = (fd_count(pid), thread_count(pid));

    let doomed_out = d.dir().join("doomed.pcap");
    let doomed = d.spawn_to_file(&["listen", &id.to_string()], &doomed_out);
    warm_sent += warm_up(PORT, PAYLOAD, "the second listener to have packets", || {
        PcapFile::count_in(&doomed_out) > 0
    });
    let (fds_with, threads_with) = (fd_count(pid), thread_count(pid));

    send_udp_seq(PORT, 0..N / 2, PAYLOAD);
    kill(Pid::from_raw(doomed.pid() as i32), Signal::SIGKILL).expect("kill the listener");
    let killed = Instant::now();
    send_udp_seq(PORT, N / 2..N, PAYLOAD);

    eventually_ok(
        Duration::from_secs(5),
        "the daemon to close the dead listener's fds",
        || {
            let now = fd_count(pid);
            if now <= fds_before {
                Ok(())
            } else {
                Err(format!("{now} fds, {fds_before} before the listener came"))
            }
        },
    );
    let freed_after = killed.elapsed();
    let (fds_after, threads_after) = (fd_count(pid), thread_count(pid));
    println!(
        "daemon UNIX sockets/threads: {fds_before}/{threads_before} with one listener, \
         {fds_with}/{threads_with} with two, {fds_after}/{threads_after} {freed_after:?} after \
         SIGKILL of one"
    );
    assert!(
        fds_with > fds_before,
        "a listener holds at least a connection in the daemon"
    );
    assert!(
        threads_after <= threads_with,
        "no thread is left behind for a vanished listener"
    );

    d.wait_spooled(id, warm_sent + N);
    assert_eq!(
        d.state(id),
        "ACTIVE",
        "a vanished listener does not touch the capture"
    );
    d.ok(&["stop", &id.to_string()]);
    let status = good.wait(DEFAULT_WAIT);
    assert!(
        status.success(),
        "the other listener ends cleanly: {}",
        good.stderr()
    );
    let seqs: Vec<u64> = read_pcap(&good_out)
        .seqs_to(PORT)
        .into_iter()
        .filter(|&s| s < N)
        .collect();
    assert_eq!(
        seqs,
        (0..N).collect::<Vec<_>>(),
        "the other listener got every packet, once, in order"
    );
    assert!(
        !good.stderr().contains("skipped"),
        "and was not told of a gap: {}",
        good.stderr()
    );
}

// === Helpers ===

/// UDP datagrams to 127.0.0.1 from a thread, as fast as the socket takes them, counting
/// what was sent and when.
struct Blast {
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// (when, packets sent by then), every thousand packets.
    log: Arc<Mutex<Vec<(Instant, u64)>>>,
    started: Instant,
    thread: Option<JoinHandle<()>>,
}

impl Blast {
    /// Starts sending `total` packets (at most 30 s) to `port`.
    fn start(port: u16, total: u64, payload_len: usize) -> Blast {
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let (s, st, l) = (sent.clone(), stop.clone(), log.clone());
        let thread = thread::spawn(move || {
            let _receiver = UdpSocket::bind(("127.0.0.1", port)).ok();
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind UDP sender");
            let deadline = started + Duration::from_secs(30);
            for seq in 0..total {
                if seq % 1000 == 0 {
                    l.lock().expect("blast log").push((Instant::now(), seq));
                    if st.load(Ordering::Relaxed) || Instant::now() >= deadline {
                        return;
                    }
                }
                // A full socket buffer is not an error worth stopping for.
                let _ = sock.send_to(&payload(seq, payload_len), ("127.0.0.1", port));
                s.store(seq + 1, Ordering::Relaxed);
            }
        });
        Blast {
            sent,
            stop,
            log,
            started,
            thread: Some(thread),
        }
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Packets sent by `t` (as of the last thousand before it).
    fn sent_at(&self, t: Instant) -> u64 {
        let log = self.log.lock().expect("blast log");
        log.iter()
            .take_while(|(when, _)| *when <= t)
            .last()
            .map_or(0, |&(_, n)| n)
    }

    /// Stops sending; returns how many packets were sent in all.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("blast thread");
        }
        self.sent()
    }
}

impl Drop for Blast {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts `pcap listen ID` with stdout on a pipe that is read only until one packet came:
/// after that the listener is stuck writing to a full pipe.
fn stalled_listener(d: &Daemon, id: u64) -> (Running, JoinHandle<(ChildStdout, Vec<u8>)>) {
    let mut stalled = d.spawn_piped(&["listen", &id.to_string()]);
    let first = spawn_pipe_reader(stalled.stdout(), Some(1));
    (stalled, first)
}

/// Sends packets numbered from [`WARM_UP`] on, in small rounds, until `ready` (listeners
/// cannot be seen to subscribe otherwise); returns how many were sent.
fn warm_up(port: u16, payload: usize, what: &str, mut ready: impl FnMut() -> bool) -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(WARM_UP);
    let mut sent = 0;
    eventually(DEFAULT_WAIT, what, || {
        if ready() {
            return true;
        }
        let from = NEXT.fetch_add(10, Ordering::Relaxed);
        send_udp_seq(port, from..from + 10, payload);
        sent += 10;
        false
    });
    sent
}

/// The packets `pcap` said it skipped, summed from its stderr.
fn skipped_told(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|line| {
            let n = line
                .strip_prefix("pcap: ")?
                .strip_suffix(" packets skipped: this reader fell behind")?;
            Some(n.parse::<u64>().unwrap_or_else(|e| {
                panic!("{line:?} does not tell a count of skipped packets ({e}); stderr:\n{stderr}")
            }))
        })
        .sum()
}

/// Where the first and last of `got` are in `spooled`; asserts `got` is a subsequence of it.
fn positions(spooled: &[u64], got: &[u64]) -> (usize, usize) {
    let at: HashMap<u64, usize> = spooled.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let order: Vec<usize> = got
        .iter()
        .map(|s| {
            *at.get(s)
                .unwrap_or_else(|| panic!("packet {s} was received, not spooled"))
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "a listener receives packets in spool order, each once"
    );
    let first = *order.first().expect("the listener received packets");
    (first, *order.last().expect("packets"))
}

/// Reads a `pcap` pipe on a thread, until it holds `packets` whole records (or to its end);
/// hands back the pipe and what was read.
fn spawn_pipe_reader(
    mut pipe: ChildStdout,
    packets: Option<usize>,
) -> JoinHandle<(ChildStdout, Vec<u8>)> {
    thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            if let Some(n) = packets {
                if PcapFile::parse_prefix(&got).is_some_and(|f| f.packets.len() >= n) {
                    break;
                }
            }
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        (pipe, got)
    })
}

/// `pcap replay ID | tshark -r -`: asserts tshark reads it without complaint; returns the
/// packet count.
fn replay_through_tshark(d: &Daemon, id: u64) -> usize {
    let mut replay = d
        .client()
        .command(&["replay", &id.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pcap replay");
    let pipe = replay.stdout.take().expect("piped stdout");
    let read = tshark_stdin(pipe, &[], "pcap replay output");
    let replayed = replay.wait_with_output().expect("wait for pcap replay");
    assert!(
        replayed.status.success(),
        "pcap replay {id} failed: {}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    read.len()
}

/// A field of `/proc/PID/status`, as its first number.
fn proc_status(pid: i32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Resident memory in bytes.
fn vm_rss(pid: i32) -> u64 {
    proc_status(pid, "VmRSS") * 1024
}

/// The daemon's threads, leaving out those that open a capture's new ring: they live for
/// the milliseconds a ring move takes, which a live reader's arrival may start.
fn thread_count(pid: i32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/task"))
        .expect("read /proc task")
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| !name.starts_with("pcapd-ring-"))
        .count() as u64
}

/// The daemon's open UNIX sockets: the API's listening socket and one per client
/// connection. Packet sockets are left out: a ring move holds two for a moment.
fn fd_count(pid: i32) -> usize {
    let unix: std::collections::HashSet<String> = fs::read_to_string("/proc/net/unix")
        .expect("read /proc/net/unix")
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(6).map(str::to_owned))
        .collect();
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc fd")
        .filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .filter(|inode| unix.contains(inode))
        .count()
}

/// The sequence number in the last whole record of a savefile whose records all have
/// `record` bytes, read from its end (the file may be growing, and large).
fn last_seq(path: &Path, record: u64) -> Option<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = fs::File::open(path).ok()?;
    let records = f.metadata().ok()?.len().checked_sub(24)? / record;
    let start = 24 + records.checked_sub(1)? * record;
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut rec = vec![0u8; record as usize];
    f.read_exact(&mut rec).ok()?;
    // Record header, Ethernet, IPv4, UDP, then the payload.
    payload_seq(&rec[16 + 14 + 20 + 8..])
}
