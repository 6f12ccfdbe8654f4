//! Local replays read the segment files pcapd hands over rather than a stream of their
//! records: the savefile is byte for byte the one the stream gives (`PCAP_NO_HANDOFF=1`),
//! with time bounds, in either unit, while the capture still writes its last segment; a
//! client that cannot reach the handoff socket (another network namespace) has the
//! records streamed instead, with the same result.

use std::time::{Duration, SystemTime};

use pcapd_e2e::*;

/// Each test captures its own port: they run at once.
const PORTS: [u16; 2] = [23901, 23902];
const PACKETS: u64 = 2_000;

/// A running capture of `port` with a few segments and an open one, its packets sent in
/// two halves with a moment between them; returns the daemon, the capture and the moment.
fn spooled(port: u16, metrics: u16) -> (Daemon, u64, SystemTime) {
    let d = Daemon::builder()
        .arg("--metrics")
        .arg(format!("127.0.0.1:{metrics}"))
        .start();
    // 512 KiB of retention makes segments of 64 KiB: about 400 of these packets each.
    let id = d.init_started(&["lo", &format!("udp port {port}"), "--max-size", "512K"]);
    send_udp_seq(port, 0..PACKETS / 2, 32);
    d.wait_spooled(id, PACKETS / 2);
    let mark = SystemTime::now();
    eventually(Duration::from_secs(1), "the clock to move on", || {
        SystemTime::now() > mark + Duration::from_millis(5)
    });
    send_udp_seq(port, PACKETS / 2..PACKETS, 32);
    d.wait_spooled(id, PACKETS);
    (d, id, mark)
}

#[test]
fn local_replays_read_the_segment_files_and_write_what_the_stream_writes() {
    if !require_root() {
        return;
    }
    let metrics = free_port();
    let (d, id, mark) = spooled(PORTS[0], metrics);
    let id = id.to_string();
    let streamed = d.client().wrapped(&["env", "PCAP_NO_HANDOFF=1"]);
    let segments = d.segments(id.parse().unwrap()).len() as u64;
    assert!(segments >= 3, "several segments: {segments}");

    let since = rfc3339(mark);
    let cases: [&[&str]; 5] = [
        &[&id],
        &[&id, "--nano"],
        &[&id, "--since", &since],
        &[&id, "--until", &since, "--nano"],
        &[&id, "--since", &since, "--until", &since],
    ];
    for (n, args) in cases.iter().enumerate() {
        let before = counter_total(metrics, "pcapd_replay_handoffs");
        let mut full = vec!["replay"];
        full.extend_from_slice(args);
        let handed = d.client().ok_bytes(&full).stdout;
        assert_eq!(
            counter_total(metrics, "pcapd_replay_handoffs"),
            before + 1,
            "{args:?}: the files were handed over"
        );
        let expected = streamed.ok_bytes(&full).stdout;
        assert_eq!(
            counter_total(metrics, "pcapd_replay_handoffs"),
            before + 1,
            "{args:?}: PCAP_NO_HANDOFF=1 has the records streamed"
        );
        assert!(
            handed == expected,
            "{args:?}: {} bytes from the files, {} from the stream",
            handed.len(),
            expected.len()
        );
        let got = PcapFile::from_bytes(&handed).seqs_to(PORTS[0]);
        let want: Vec<u64> = match n {
            0 | 1 => (0..PACKETS).collect(),
            2 => (PACKETS / 2..PACKETS).collect(),
            3 => (0..PACKETS / 2).collect(),
            _ => Vec::new(),
        };
        assert_eq!(got, want, "{args:?}: the packets in order");
    }
    assert!(
        counter_total(metrics, "pcapd_replay_handed_over_segments") >= 2 * segments,
        "every segment handed over for each full replay"
    );

    // The capture writes on: a replay has what was spooled when it began.
    send_udp_seq(PORTS[0], PACKETS..PACKETS + 100, 32);
    d.wait_spooled(id.parse().unwrap(), PACKETS + 100);
    let all = d.replay(&[&id]);
    assert_eq!(
        all.seqs_to(PORTS[0]),
        (0..PACKETS + 100).collect::<Vec<_>>()
    );
}

#[test]
fn a_client_in_another_network_namespace_has_the_records_streamed() {
    if !require_root() {
        return;
    }
    let metrics = free_port();
    let (d, id, _) = spooled(PORTS[1], metrics);
    let pair = VethPair::create(7);
    let elsewhere = d.client().wrapped(&["ip", "netns", "exec", pair.netns()]);
    let before = counter_total(metrics, "pcapd_replay_handoffs");
    let out = elsewhere.ok_bytes(&["replay", &id.to_string()]);
    assert_eq!(
        counter_total(metrics, "pcapd_replay_handoffs"),
        before,
        "the handoff socket is out of reach from another namespace"
    );
    assert_eq!(
        PcapFile::from_bytes(&out.stdout).seqs_to(PORTS[1]),
        (0..PACKETS).collect::<Vec<_>>()
    );
    assert!(
        out.stdout == d.client().ok_bytes(&["replay", &id.to_string()]).stdout,
        "the same savefile as from the handed-over files"
    );
    assert_eq!(counter_total(metrics, "pcapd_replay_handoffs"), before + 1);
}
