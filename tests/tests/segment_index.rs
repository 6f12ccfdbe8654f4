//! The segment index: a filtered replay leaves unread the segments whose index shows no
//! packet can match, and gives exactly what tcpdump's reading of a full replay gives;
//! missing and damaged indexes are rebuilt, never trusted.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;

/// Each test captures its own port: they run at once.
const PORTS: [u16; 3] = [23801, 23802, 23803];
/// Senders, one per phase of the traffic: 127.0.0.20, .21, ...
const PHASES: u8 = 5;
const PER_PHASE: u64 = 300;

fn sender(phase: u8) -> String {
    format!("127.0.0.{}", 20 + phase)
}

/// Sends `PER_PHASE` datagrams from each sender in turn, so that each segment holds one or
/// two senders.
fn send_phases(port: u16) {
    let _receiver = UdpSocket::bind(("127.0.0.1", port)).ok();
    let mut seq = 0u64;
    for phase in 0..PHASES {
        let sock = UdpSocket::bind((sender(phase).as_str(), 0)).expect("bind a UDP sender");
        for _ in 0..PER_PHASE {
            sock.send_to(&payload(seq, 200), ("127.0.0.1", port))
                .expect("send UDP");
            seq += 1;
            if seq.is_multiple_of(50) {
                // Paced like the harness's own senders, so that the capture keeps up.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// What `tcpdump -r FULL -w - FILTER` keeps of a full replay.
fn tcpdump_filtered(full: &Path, filter: &str, out: &Path) -> PcapFile {
    let status = Command::new("tcpdump")
        .arg("-r")
        .arg(full)
        .arg("-w")
        .arg(out)
        .arg(filter)
        .output()
        .expect("run tcpdump (Debian: apt-get install tcpdump)");
    assert!(
        status.status.success(),
        "tcpdump {filter:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    read_pcap(out)
}

fn index_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read spool dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .collect();
    v.sort();
    v
}

/// The IPv4 source of an Ethernet frame from `lo`.
fn source(p: &Packet) -> [u8; 4] {
    p.data[26..30].try_into().expect("an IPv4 source")
}

struct Setup {
    d: Daemon,
    id: u64,
    metrics: u16,
    port: u16,
    full: PathBuf,
    all: PcapFile,
    segments: Vec<(PathBuf, PcapFile)>,
}

fn setup(port: u16) -> Option<Setup> {
    if !require_root() {
        return None;
    }
    let metrics = free_port();
    let d = Daemon::builder()
        .arg("--metrics")
        .arg(format!("127.0.0.1:{metrics}"))
        .start();
    // 64 KiB segments: about 300 packets each, one or two senders per segment.
    let id = d.init_started(&["lo", &format!("udp port {port}"), "--max-size", "512K"]);
    send_phases(port);
    d.wait_spooled(id, u64::from(PHASES) * PER_PHASE);
    d.ok(&["stop", &id.to_string()]);
    d.wait_state(id, "PAUSED");
    let full = d.dir().join("full.pcap");
    let all = d.replay(&[id.to_string()]);
    assert_eq!(all.packets.len() as u64, u64::from(PHASES) * PER_PHASE);
    std::fs::write(
        &full,
        d.client().ok_bytes(&["replay", &id.to_string()]).stdout,
    )
    .expect("write the full replay");
    let segments = d.read_segments(id);
    assert!(segments.len() >= 5, "several segments: {}", segments.len());
    Some(Setup {
        d,
        id,
        metrics,
        port,
        full,
        all,
        segments,
    })
}

impl Setup {
    /// Replays with `filter`, checks the packets against tcpdump's, and returns how many
    /// segments the daemon skipped for it.
    fn replay_like_tcpdump(&self, filter: &str) -> (PcapFile, u64) {
        let before = counter_total(self.metrics, "pcapd_replay_skipped_segments");
        let got = self.d.replay(&[&self.id.to_string(), "--filter", filter]);
        let expected = tcpdump_filtered(&self.full, filter, &self.d.dir().join("tcpdump.pcap"));
        assert_eq!(
            got.packets.len(),
            expected.packets.len(),
            "{filter:?}: pcap replay and tcpdump disagree on the count"
        );
        assert!(
            got.packets == expected.packets,
            "{filter:?}: same count, different packets"
        );
        let after = counter_total(self.metrics, "pcapd_replay_skipped_segments");
        (got, after - before)
    }

    /// Segments holding no packet from `host`.
    fn segments_without(&self, host: [u8; 4]) -> u64 {
        self.segments
            .iter()
            .filter(|(_, f)| f.packets.iter().all(|p| source(p) != host))
            .count() as u64
    }
}

#[test]
fn a_host_filter_reads_only_the_segments_that_hold_the_host() {
    let Some(s) = setup(PORTS[0]) else { return };
    assert_eq!(
        index_files(&s.d.spool_dir(s.id)).len(),
        s.segments.len(),
        "every closed segment has its index beside it"
    );
    let host = [127, 0, 0, 22];
    let (got, skipped) = s.replay_like_tcpdump("host 127.0.0.22");
    assert_eq!(got.packets.len() as u64, PER_PHASE);
    assert!(got.packets.iter().all(|p| source(p) == host));
    let without = s.segments_without(host);
    assert!(
        without >= 3,
        "the host is in few segments: {without} without it"
    );
    assert_eq!(
        skipped, without,
        "every segment without the host is skipped"
    );

    // Absent from every segment: nothing read, an empty savefile.
    let (none, skipped) = s.replay_like_tcpdump("host 127.0.0.99 and udp");
    assert!(none.packets.is_empty());
    assert_eq!(skipped, s.segments.len() as u64);
    let (_, skipped) = s.replay_like_tcpdump(&format!("udp dst port {}", s.port + 100));
    assert_eq!(skipped, s.segments.len() as u64);

    // The whole spool when no filter is given.
    assert_eq!(s.d.replay(&[s.id.to_string()]), s.all);
}

#[test]
fn missing_and_damaged_indexes_are_rebuilt_not_trusted() {
    let Some(mut s) = setup(PORTS[1]) else { return };
    let dir = s.d.spool_dir(s.id);
    let host = [127, 0, 0, 21];
    let filter = "host 127.0.0.21";
    let (expected, skipped) = s.replay_like_tcpdump(filter);
    let without = s.segments_without(host);
    assert_eq!(skipped, without);

    // Gone (a spool from before the index): read in full once, rebuilt meanwhile.
    for f in index_files(&dir) {
        std::fs::remove_file(f).expect("remove an index");
    }
    s.d.restart();
    let (got, skipped) = s.replay_like_tcpdump(filter);
    assert_eq!(got, expected);
    assert_eq!(skipped, 0, "no index, nothing skipped");
    assert_eq!(
        counter_total(s.metrics, "pcapd_replay_rebuilt_segment_indexes"),
        s.segments.len() as u64
    );
    assert_eq!(index_files(&dir).len(), s.segments.len(), "rebuilt on disk");
    let (got, skipped) = s.replay_like_tcpdump(filter);
    assert_eq!(got, expected);
    assert_eq!(
        skipped, without,
        "the rebuilt indexes rule segments out again"
    );

    // Damaged where it names the host: if it were trusted, its segment would be skipped
    // and packets lost. The checksum gives it away; it is read and rebuilt.
    let key = [host[3], host[2], host[1], host[0], 0xff, 0xff];
    let mut damaged = 0;
    for f in index_files(&dir) {
        let mut b = std::fs::read(&f).expect("read an index");
        if let Some(at) = b.windows(key.len()).position(|w| w == key) {
            b[at] ^= 0x01;
            std::fs::write(&f, b).expect("damage an index");
            damaged += 1;
        }
    }
    assert!(damaged >= 1, "the host is named in an index");
    let rebuilt = counter_total(s.metrics, "pcapd_replay_rebuilt_segment_indexes");
    let (got, _) = s.replay_like_tcpdump(filter);
    assert_eq!(got, expected);
    assert_eq!(
        counter_total(s.metrics, "pcapd_replay_rebuilt_segment_indexes") - rebuilt,
        damaged
    );
    // Garbage in place of one: the same.
    std::fs::write(&index_files(&dir)[0], b"not an index").expect("write garbage");
    let (got, _) = s.replay_like_tcpdump(filter);
    assert_eq!(got, expected);
}

#[test]
fn filters_the_index_cannot_judge_still_give_tcpdumps_packets() {
    let Some(s) = setup(PORTS[2]) else { return };
    let port = s.port;
    for filter in [
        "not host 127.0.0.22",
        "! (host 127.0.0.22 or host 127.0.0.23)",
        "not not host 127.0.0.23",
        "host localhost",
        "host 127.0.0.20 or 127.0.0.24",
        "src host 127.0.0.24 && udp",
        "udp and (src 127.0.0.21 or dst host 127.0.0.99)",
        "host 127.0.0.21 and not port 1",
        "net 127.0.0.20/31",
        "net 127.0.0.24/32 or net 10",
        "portrange 23800-23802 and host 127.0.0.23",
        "ip proto 17 and host 127.0.0.20",
        "udp[8:4] = 0 or host 127.0.0.22",
        "greater 100 and host 127.0.0.22",
        "ip6 or arp",
        "tcp",
        "icmp or host 127.0.0.20",
        &format!("udp port {port} or 53"),
    ] {
        s.replay_like_tcpdump(filter);
    }
}
