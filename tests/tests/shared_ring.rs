//! Past sixteen running captures on one interface (`shared_ring_after`), the next ones read
//! one shared ring (one kernel socket without a filter, each capture's filter run in
//! pcapd): every capture still keeps exactly its own packets, is read live, counts drops,
//! and the shared ring closes once no capture reads it.

use std::collections::HashSet;

use pcapd_e2e::*;

/// Captures with a socket of their own before the next ones share one.
const OWN: usize = 16;
const CAPTURES: usize = 20;
const FIRST_PORT: u16 = 24431;

/// The test's sequence numbers in a replay of `id`, how many came twice, and how many
/// datagrams were to another port than `port`.
fn seqs(d: &Daemon, id: u64, port: u16) -> (HashSet<u64>, usize, usize) {
    let file = d.replay(&[&id.to_string()]);
    let (mut seen, mut doubled, mut foreign) = (HashSet::new(), 0, 0);
    for p in &file.packets {
        let Some(udp) = p.udp(file.link_type) else {
            foreign += 1;
            continue;
        };
        if udp.dst_port != port {
            foreign += 1;
            continue;
        }
        if let Some(seq) = payload_seq(udp.payload) {
            if !seen.insert(seq) {
                doubled += 1;
            }
        }
    }
    (seen, doubled, foreign)
}

/// Packet rings mapped into pcapd: shared mappings of packet sockets.
fn mapped_rings(pid: u32) -> usize {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    maps.lines()
        .filter(|l| l.ends_with(']') && l.contains(" rw-s ") && l.contains("socket:["))
        .count()
}

#[test]
fn captures_past_sixteen_on_one_interface_share_a_ring_and_each_keeps_exactly_its_packets() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    // The last two have the same filter: it runs once per packet for both.
    let ports: Vec<u16> = (0..CAPTURES as u16)
        .map(|i| FIRST_PORT + i.min(CAPTURES as u16 - 2))
        .collect();
    // One after the other, so that which ones share is known.
    let ids: Vec<u64> = ports
        .iter()
        .map(|p| d.init_started(&["lo", &format!("udp dst port {p}")]))
        .collect();
    for (i, &id) in ids.iter().enumerate() {
        let ring = d.counter(id, "ring_bytes");
        if i < OWN {
            assert!(ring > 0, "capture {id} (#{}) has a ring of its own", i + 1);
        } else {
            assert_eq!(ring, 0, "capture {id} (#{}) reads the shared ring", i + 1);
        }
    }
    assert_eq!(
        mapped_rings(d.pid()),
        OWN + 1,
        "sixteen rings of their own and one shared"
    );

    // Each port gets another number of datagrams; each capture keeps exactly its own.
    let sent: Vec<u64> = ports
        .iter()
        .map(|&p| 200 + 37 * u64::from(p - FIRST_PORT))
        .collect();
    for (i, (port, &n)) in ports.iter().zip(&sent).enumerate() {
        if i == 0 || ports[i - 1] != *port {
            send_udp_seq(*port, 0..n, 100 + *port as usize % 7 * 100);
        }
    }
    eventually(DEFAULT_WAIT, "every capture to spool its datagrams", || {
        ids.iter()
            .zip(&sent)
            .all(|(&id, &n)| d.counter(id, "spooled_packets") >= n)
    });
    for (i, (&id, &n)) in ids.iter().zip(&sent).enumerate() {
        let (seen, doubled, foreign) = seqs(&d, id, ports[i]);
        let want: HashSet<u64> = (0..n).collect();
        assert_eq!(seen, want, "capture {id} kept exactly datagrams 0..{n}");
        assert_eq!(doubled, 0, "capture {id} has no datagram twice");
        assert_eq!(foreign, 0, "capture {id} has no packet its filter rejects");
        assert_eq!(d.counter(id, "spooled_packets"), n, "capture {id}");
        assert_eq!(d.counter(id, "dropped_kernel"), 0, "capture {id}");
    }

    // A filter only the kernel can run (`inbound` loads the packet type the kernel holds;
    // run on the packet's bytes it would match nothing) keeps a socket of its own, past
    // sixteen too. (On `lo` it matches nothing with tcpdump either: only the ring is checked.)
    let inbound_port = FIRST_PORT + CAPTURES as u16;
    let inbound = d.init_started(&["lo", &format!("inbound and udp dst port {inbound_port}")]);
    assert_eq!(d.capture(inbound)["state"], "ACTIVE");
    assert!(
        d.counter(inbound, "ring_bytes") > 0,
        "an `inbound` capture has its own ring"
    );
    d.ok(&["stop", &inbound.to_string()]);

    // A shared capture with `--count` keeps exactly that many and finishes.
    let counted_port = inbound_port + 1;
    let counted = d.init_started(&[
        "lo",
        &format!("udp dst port {counted_port}"),
        "--count",
        "25",
    ]);
    assert_eq!(
        d.counter(counted, "ring_bytes"),
        0,
        "a member of the shared ring"
    );
    send_udp_seq(counted_port, 0..40, 64);
    eventually(DEFAULT_WAIT, "the counted capture to finish", || {
        d.capture(counted)["state"] == "FINISHED"
    });
    let (seen, doubled, _) = seqs(&d, counted, counted_port);
    assert_eq!(
        seen,
        (0..25).collect::<HashSet<u64>>(),
        "the first 25, exactly"
    );
    assert_eq!(doubled, 0);

    // A live reader of a shared capture gets what comes after it started.
    let shared = ids[CAPTURES - 1];
    let port = ports[CAPTURES - 1];
    let before = sent[CAPTURES - 1];
    let out = d.dir().join("live.pcap");
    let mut live = d.spawn_to_file(&["replay", &shared.to_string(), "--live"], &out);
    eventually(DEFAULT_WAIT, "the spool in the live replay", || {
        PcapFile::count_in(&out) as u64 >= before || live.try_status().is_some()
    });
    send_udp_seq(port, before..before + 50, 64);
    eventually(DEFAULT_WAIT, "the new datagrams in the live replay", || {
        PcapFile::count_in(&out) as u64 >= before + 50 || live.try_status().is_some()
    });
    assert!(live.try_status().is_none(), "the live replay still runs");
    drop(live);

    // A stopped shared capture gets nothing more; the others go on.
    let (stopped, going) = (ids[OWN], ids[OWN + 1]);
    d.ok(&["stop", &stopped.to_string()]);
    let (stopped_had, going_had) = (
        d.counter(stopped, "spooled_packets"),
        d.counter(going, "spooled_packets"),
    );
    send_udp_seq(ports[OWN], 10_000..10_020, 64);
    send_udp_seq(ports[OWN + 1], 10_000..10_020, 64);
    eventually(
        DEFAULT_WAIT,
        "the running shared capture to spool 20 more",
        || d.counter(going, "spooled_packets") == going_had + 20,
    );
    assert_eq!(d.counter(stopped, "spooled_packets"), stopped_had);

    // Once no capture reads it, the shared ring closes.
    for &id in &ids[OWN..] {
        d.ok(&["stop", &id.to_string()]);
    }
    eventually(DEFAULT_WAIT, "the shared ring to be closed", || {
        mapped_rings(d.pid()) == OWN
    });
    // Started again with fewer than sixteen others running, a capture has a ring of its own.
    d.ok(&["stop", &ids[0].to_string()]);
    d.ok(&["start", &shared.to_string()]);
    eventually(DEFAULT_WAIT, "the capture to run again", || {
        d.capture(shared)["state"] == "ACTIVE"
    });
    assert!(d.counter(shared, "ring_bytes") > 0, "a ring of its own");
    assert!(
        d.log().contains("opened a shared ring"),
        "the log says when a shared ring opens"
    );
}

#[test]
fn shared_ring_after_sets_how_many_captures_have_a_socket_of_their_own() {
    if !require_root() {
        return;
    }
    let d = Daemon::builder().config("shared_ring_after = 1\n").start();
    let ports = [FIRST_PORT + 100, FIRST_PORT + 101];
    let ids: Vec<u64> = ports
        .iter()
        .map(|p| d.init_started(&["lo", &format!("udp dst port {p}")]))
        .collect();
    assert!(
        d.counter(ids[0], "ring_bytes") > 0,
        "the first has its own ring"
    );
    assert_eq!(d.counter(ids[1], "ring_bytes"), 0, "the second shares one");
    assert_eq!(
        mapped_rings(d.pid()),
        2,
        "one ring of its own and one shared"
    );
    let sent = [120u64, 170];
    for (port, &n) in ports.iter().zip(&sent) {
        send_udp_seq(*port, 0..n, 200);
    }
    eventually(
        DEFAULT_WAIT,
        "both captures to spool their datagrams",
        || {
            ids.iter()
                .zip(&sent)
                .all(|(&id, &n)| d.counter(id, "spooled_packets") >= n)
        },
    );
    for ((&id, &port), &n) in ids.iter().zip(&ports).zip(&sent) {
        let (seen, doubled, foreign) = seqs(&d, id, port);
        assert_eq!(seen, (0..n).collect::<HashSet<u64>>(), "capture {id}");
        assert_eq!((doubled, foreign), (0, 0), "capture {id}");
    }

    // Reloaded to 0, a capture started again shares too: no ring of its own is left.
    let logged = d.reload_config("shared_ring_after = 0\n");
    assert!(!logged.contains("not reloaded"), "{logged}");
    d.ok(&["stop", &ids[0].to_string()]);
    d.ok(&["start", &ids[0].to_string()]);
    eventually(DEFAULT_WAIT, "the capture to run again", || {
        d.capture(ids[0])["state"] == "ACTIVE"
    });
    assert_eq!(
        d.counter(ids[0], "ring_bytes"),
        0,
        "it reads the shared ring"
    );
    eventually(DEFAULT_WAIT, "its own ring to be closed", || {
        mapped_rings(d.pid()) == 1
    });
    send_udp_seq(ports[0], 1000..1030, 200);
    eventually(
        DEFAULT_WAIT,
        "the restarted capture to spool 30 more",
        || d.counter(ids[0], "spooled_packets") >= sent[0] + 30,
    );
    let (seen, doubled, foreign) = seqs(&d, ids[0], ports[0]);
    assert_eq!(seen.len() as u64, sent[0] + 30);
    assert_eq!((doubled, foreign), (0, 0));
}
