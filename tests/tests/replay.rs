//! Replaying what is spooled: by time, through a filter, into a pipe that closes early, and
//! the spool segments themselves.

use std::io::Read;
use std::time::{Duration, SystemTime};

use pcapd_e2e::*;

#[test]
fn since_and_until_select_packets_by_time() {
    const PORT: u16 = 23301;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d
        .init_started(&["lo", &format!("udp port {PORT}")])
        .to_string();
    send_udp_seq(PORT, 0..200, 64);
    d.wait_spooled(id.parse().unwrap(), 200);
    // Every packet so far was captured before `mark`; every later one is sent after it.
    let mark = SystemTime::now();
    eventually(Duration::from_secs(1), "the clock to move on", || {
        SystemTime::now() > mark + Duration::from_millis(5)
    });
    send_udp_seq(PORT, 200..500, 64);
    d.wait_spooled(id.parse().unwrap(), 500);

    let since = d.replay(&[id.as_str(), "--since", &unix_secs(mark)]);
    assert_eq!(
        since.seqs_to(PORT),
        (200..500).collect::<Vec<_>>(),
        "--since unix seconds"
    );
    let since = d.replay(&[id.as_str(), "--since", &rfc3339(mark)]);
    assert_eq!(since.packets.len(), 300, "--since RFC 3339");
    let until = d.replay(&[id.as_str(), "--until", &rfc3339(mark)]);
    assert_eq!(
        until.seqs_to(PORT),
        (0..200).collect::<Vec<_>>(),
        "--until RFC 3339"
    );
    let ago = d.replay(&[id.as_str(), "--since", "1h"]);
    assert_eq!(ago.packets.len(), 500, "--since as a duration ago");
    let none = d.replay(&[
        id.as_str(),
        "--since",
        &rfc3339(mark),
        "--until",
        &rfc3339(mark),
    ]);
    assert!(
        none.packets.is_empty(),
        "an empty window gives a valid empty savefile"
    );
}

#[test]
fn replay_filter_keeps_only_matching_packets() {
    const X: u16 = 23302;
    const Y: u16 = 23303;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", "udp"]);
    send_udp(X, 300, 64);
    send_udp(Y, 400, 64);
    eventually_ok(DEFAULT_WAIT, "both ports to be spooled", || {
        let all = d.replay(&[id.to_string()]);
        let (x, y) = (all.seqs_to(X).len(), all.seqs_to(Y).len());
        if x == 300 && y == 400 {
            Ok(())
        } else {
            Err(format!(
                "{x} packets to {X}, {y} to {Y}; capture: {}",
                d.capture(id)
            ))
        }
    });

    let only_x = d.replay(&[&id.to_string(), "--filter", &format!("udp port {X}")]);
    assert_eq!(only_x.seqs_to(X), (0..300).collect::<Vec<_>>());
    assert_eq!(
        only_x.packets.len(),
        300,
        "nothing but port {X}: {:?}",
        only_x.udp_dst_ports()
    );
}

#[test]
fn replay_into_a_closed_pipe_ends_quietly() {
    const PORT: u16 = 23304;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}")]);
    // Far more than a pipe holds, so pcap is still writing when the reader goes.
    send_udp(PORT, 2000, 500);
    d.wait_spooled(id, 2000);

    let mut replay = d.spawn_piped(&["replay", &id.to_string()]);
    let mut pipe = replay.stdout();
    let mut head = [0u8; 100];
    pipe.read_exact(&mut head)
        .expect("read the first 100 bytes");
    assert_eq!(
        head[..4],
        [0xd4, 0xc3, 0xb2, 0xa1],
        "a pcap savefile, magic a1b2c3d4"
    );
    drop(pipe);

    let status = replay.wait(Duration::from_secs(30));
    let stderr = replay.stderr();
    assert_eq!(
        status.code(),
        Some(0),
        "a broken pipe is not an error; stderr: {stderr}"
    );
    assert!(stderr.is_empty(), "and says nothing: {stderr}");
}

#[test]
fn spool_segments_are_plain_savefiles() {
    const PORT: u16 = 23305;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}")]);
    send_udp(PORT, 1000, 300);
    d.wait_spooled(id, 1000);

    let segments = d.segments(id);
    let open = segments
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .count();
    assert!(open <= 1, "at most one open segment: {segments:?}");
    for s in &segments {
        let name = s.file_name().unwrap().to_string_lossy();
        let digits = name.trim_end_matches(".part").trim_end_matches(".pcap");
        assert!(
            digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()),
            "segments are named after their first sequence number: {name}"
        );
    }

    d.ok(&["stop", &id.to_string()]);
    d.wait_state(id, "PAUSED");
    let mut total = Vec::new();
    for (path, f) in d.read_segments(id) {
        assert_eq!(f.link_type, 1, "{}", path.display());
        if let Some(n) = tcpdump_count(&path) {
            assert_eq!(n, f.packets.len(), "tcpdump reads {}", path.display());
        }
        total.extend(f.seqs_to(PORT));
    }
    assert_eq!(
        total,
        (0..1000).collect::<Vec<_>>(),
        "the segments hold every packet once, in order"
    );
}

#[test]
fn tcp_conversations_are_captured_both_ways() {
    const PORT: u16 = 23306;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", &format!("tcp port {PORT}")]);
    let sent = send_tcp(PORT, 200);

    // Wait for all the data and a FIN each way: the whole conversation.
    let mut f = d.replay(&[id.to_string()]);
    eventually_ok(DEFAULT_WAIT, "the whole conversation to be spooled", || {
        f = d.replay(&[id.to_string()]);
        let tcp: Vec<Tcp> = f
            .packets
            .iter()
            .filter_map(|p| p.tcp(f.link_type))
            .collect();
        let to: usize = tcp
            .iter()
            .filter(|t| t.dst_port == PORT)
            .map(|t| t.payload.len())
            .sum();
        let fin = |t: &&Tcp| t.flags & 0x01 != 0;
        let fin_to = tcp.iter().filter(fin).any(|t| t.dst_port == PORT);
        let fin_from = tcp.iter().filter(fin).any(|t| t.src_port == PORT);
        if to == sent && fin_to && fin_from {
            Ok(())
        } else {
            Err(format!(
                "{} TCP packets, {to} of {sent} payload bytes, FIN to/from listener: \
                 {fin_to}/{fin_from}; capture: {}",
                tcp.len(),
                d.capture(id)
            ))
        }
    });
    let syns = f
        .packets
        .iter()
        .filter_map(|p| p.tcp(f.link_type))
        .filter(|t| t.flags & 0x02 != 0);
    assert_eq!(syns.count(), 2, "SYN and SYN-ACK, once each");
    assert!(f.udp_dst_ports().is_empty(), "no UDP in a tcp capture");
}
