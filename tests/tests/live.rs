//! Streams of new packets: `replay --live` across the hand-over from spool to live, and
//! `listen`.

use std::collections::BTreeSet;
use std::io::Read;
use std::time::Duration;

use pcapd_e2e::*;

#[test]
fn live_replay_hands_over_without_gap_or_duplicate() {
    const PORT: u16 = 23401;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}")]);
    send_udp_seq(PORT, 0..500, 64);
    let spooled = d.wait_spooled(id, 500)["counters"]["spooled_packets"].clone();
    assert_eq!(spooled, 500, "only the test's packets are spooled");

    let out = d.dir().join("live.pcap");
    let mut live = d.spawn_to_file(&["replay", &id.to_string(), "--live"], &out);
    // The replay's spool ends at sequence number 500, and the reader has all of it...
    eventually(
        DEFAULT_WAIT,
        "the 500 spooled packets in the replay",
        || PcapFile::count_in(&out) >= 500 || live.try_status().is_some(),
    );
    assert!(
        live.try_status().is_none(),
        "replay --live ended after the spool: {}",
        live.stderr()
    );
    let spool_part = PcapFile::parse_prefix(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        spool_part.seqs_to(PORT),
        (0..500).collect::<Vec<_>>(),
        "the spool, whole and alone, before anything new was sent"
    );
    // ... so packets sent now can only come through the live queue.
    send_udp_seq(PORT, 500..1000, 64);
    eventually(DEFAULT_WAIT, "1000 packets in the live replay", || {
        PcapFile::count_in(&out) >= 1000 || live.try_status().is_some()
    });
    assert!(
        live.try_status().is_none(),
        "replay --live ended early: {}",
        live.stderr()
    );

    d.ok(&["stop", &id.to_string()]);
    let status = live.wait(DEFAULT_WAIT);
    assert!(
        status.success(),
        "replay --live ends cleanly when the capture stops: {}",
        live.stderr()
    );

    let f = read_pcap(&out);
    let seqs = f.seqs_to(PORT);
    assert_eq!(f.packets.len(), 1000, "no duplicates, nothing else");
    assert_eq!(
        seqs.iter().copied().collect::<BTreeSet<_>>(),
        (0..1000).collect(),
        "no gap"
    );
    assert_eq!(seqs, (0..1000).collect::<Vec<_>>(), "in capture order");
}

#[test]
fn listen_streams_only_new_packets_and_stops_at_count() {
    const PORT: u16 = 23402;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}")]);
    send_udp_seq(PORT, 0..50, 64);
    d.wait_spooled(id, 50);

    let out = d.dir().join("listen.pcap");
    let mut listen = d.spawn_piped(&[
        "listen",
        &id.to_string(),
        "--count",
        "100",
        "-w",
        out.to_str().unwrap(),
    ]);
    // The listener's subscription cannot be observed from outside, so traffic keeps coming
    // in small rounds until it has had its 100 packets; the bound stops a hang.
    let mut next = 1000;
    eventually(DEFAULT_WAIT, "listen --count 100 to end", || {
        if listen.try_status().is_some() {
            return true;
        }
        if next < 4000 {
            send_udp_seq(PORT, next..next + 20, 64);
            next += 20;
        }
        false
    });
    let status = listen.wait(Duration::ZERO);
    assert!(
        status.success(),
        "listen --count ends with 0: {}",
        listen.stderr()
    );

    let f = read_pcap(&out);
    let seqs = f.seqs_to(PORT);
    assert_eq!(f.packets.len(), 100, "exactly --count packets");
    assert!(
        seqs[0] >= 1000,
        "nothing spooled before listen started: {seqs:?}"
    );
    assert_eq!(
        seqs,
        (seqs[0]..seqs[0] + 100).collect::<Vec<_>>(),
        "consecutive new packets"
    );
}

#[test]
fn live_replay_ends_quietly_when_the_reader_goes_away() {
    const PORT: u16 = 23403;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}")]);
    send_udp_seq(PORT, 0..10, 64);
    d.wait_spooled(id, 10);

    let mut live = d.spawn_piped(&["replay", &id.to_string(), "--live"]);
    let mut pipe = live.stdout();
    let mut head = [0u8; 24];
    pipe.read_exact(&mut head).expect("the savefile header");
    drop(pipe);

    // pcap learns the reader is gone on its next write, when new packets come.
    let mut next = 10;
    eventually(
        DEFAULT_WAIT,
        "replay --live to notice the closed pipe",
        || {
            if live.try_status().is_some() {
                return true;
            }
            send_udp_seq(PORT, next..next + 10, 64);
            next += 10;
            false
        },
    );
    let status = live.wait(Duration::ZERO);
    let stderr = live.stderr();
    assert_eq!(
        status.code(),
        Some(0),
        "a broken pipe is not an error: {stderr}"
    );
    assert!(stderr.is_empty(), "and says nothing: {stderr}");
    assert_eq!(
        d.state(id),
        "ACTIVE",
        "a reader leaving does not touch the capture"
    );
}
