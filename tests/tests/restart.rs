//! What survives the daemon: a clean SIGTERM, and a crash.

use std::collections::BTreeSet;

use pcapd_e2e::*;

#[test]
fn restart_resumes_active_captures_and_keeps_every_state_and_packet() {
    const PORT: u16 = 23201;
    if !require_root() {
        return;
    }
    let mut d = Daemon::start();
    let active = d.init_started(&["lo", &format!("udp port {PORT}"), "--alias", "keep"]);
    let paused = d.init_started(&["lo", "udp port 23202"]);
    d.ok(&["stop", &paused.to_string()]);
    d.wait_state(paused, "PAUSED");
    let pending = d.init(&["lo", "udp port 23203"]);

    send_udp(PORT, 1000, 100);
    d.wait_spooled(active, 1000);
    let before = d.replay(&["keep"]);
    assert_eq!(before.packets.len(), 1000);

    let status = d.restart();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM ends pcapd with status 0; log:\n{}",
        d.log()
    );

    d.wait_state(active, "ACTIVE");
    assert_eq!(d.state(paused), "PAUSED");
    assert_eq!(d.state(pending), "PENDING");
    assert_eq!(d.capture(active)["aliases"], serde_json::json!(["keep"]));
    assert_eq!(
        d.counter(active, "spooled_packets"),
        1000,
        "counters survive a restart"
    );
    let after = d.replay(&["keep"]);
    assert_eq!(after, before, "the spool replays the same after a restart");

    send_udp_seq(PORT, 1000..1500, 100);
    d.wait_spooled(active, 1500);
    let grown = d.replay(&["keep"]);
    assert_eq!(grown.packets.len(), 1500, "new packets are appended");
    assert_eq!(
        grown.packets[..1000],
        before.packets[..],
        "old packets first, unchanged"
    );
    let seqs: BTreeSet<u64> = grown.seqs_to(PORT).into_iter().collect();
    assert_eq!(seqs, (0..1500).collect());
}

#[test]
fn a_crash_leaves_a_spool_that_replays_and_grows() {
    const PORT: u16 = 23204;
    if !require_root() {
        return;
    }
    let mut d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}")]);
    send_udp(PORT, 1000, 200);
    d.wait_spooled(id, 1000);

    d.kill();
    d.start_again();
    d.wait_state(id, "ACTIVE");

    // What was buffered but not yet written may be lost; what is there must be whole.
    let survived = d.replay(&[id.to_string()]);
    let kept = survived.seqs_to(PORT);
    assert!(kept.len() <= 1000);
    assert_eq!(
        kept,
        (0..kept.len() as u64).collect::<Vec<_>>(),
        "a prefix, in order"
    );

    send_udp_seq(PORT, 1000..1300, 200);
    eventually(DEFAULT_WAIT, "the new packets to be replayed", || {
        d.replay(&[id.to_string()]).seqs_to(PORT).last() == Some(&1299)
    });
    let grown = d.replay(&[id.to_string()]).seqs_to(PORT);
    let expected: Vec<u64> = (0..kept.len() as u64).chain(1000..1300).collect();
    assert_eq!(
        grown, expected,
        "the repaired spool continues without gaps or duplicates"
    );

    // Every segment on disk, the repaired one included, is a savefile libpcap reads whole.
    d.ok(&["stop", &id.to_string()]);
    d.wait_state(id, "PAUSED");
    let on_disk: usize = d
        .read_segments(id)
        .iter()
        .map(|(_, f)| f.packets.len())
        .sum();
    assert_eq!(
        on_disk,
        grown.len(),
        "segments hold exactly what replay returns"
    );
}
