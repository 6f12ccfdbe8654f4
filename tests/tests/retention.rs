//! Retention: a capture's spool stays within its size limit by dropping its oldest
//! segments, says so in its counters, and still replays its newest packets.

use std::fs;
use std::time::Duration;

use pcapd_e2e::*;

#[test]
fn max_size_expires_the_oldest_packets_first() {
    const PORT: u16 = 23601;
    const LIMIT: u64 = 256 * 1024;
    const SENT: u64 = 1200;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init_started(&["lo", &format!("udp port {PORT}"), "--max-size", "256K"]);
    // About 1.25 MiB of records: five times the limit.
    send_udp_seq(PORT, 0..SENT, 1000);
    d.wait_spooled(id, SENT);

    let mut last = serde_json::Value::Null;
    let mut largest_segment = 0;
    let mut on_disk = u64::MAX;
    // Segments are closed off the capture thread, and one still closing is expired at the
    // next look once it is catalogued: wait for the files as well as the counters.
    eventually(
        DEFAULT_WAIT,
        "retention to bring the spool under its limit",
        || {
            last = d.capture(id);
            let sizes: Vec<u64> = d
                .segments(id)
                .iter()
                .filter_map(|p| fs::metadata(p).ok())
                .map(|m| m.len())
                .collect();
            largest_segment = sizes.iter().copied().max().unwrap_or(0);
            on_disk = sizes.iter().sum();
            let c = &last["counters"];
            let expired = c["expired_packets"].as_u64().unwrap_or(0);
            let spool = c["spool_bytes"].as_u64().unwrap_or(u64::MAX);
            expired > 0 && spool <= LIMIT + largest_segment && on_disk <= LIMIT + largest_segment
        },
    );
    let c = &last["counters"];
    assert_eq!(
        c["spooled_packets"].as_u64(),
        Some(SENT),
        "every packet was spooled once: {last}"
    );
    assert!(
        on_disk <= LIMIT + largest_segment,
        "{on_disk} bytes on disk for a {LIMIT}-byte limit and {largest_segment}-byte segments"
    );

    // Retention is done with this traffic; what is left replays as one valid file.
    d.ok(&["stop", &id.to_string()]);
    d.wait_state(id, "PAUSED");
    let c = d.capture(id)["counters"].clone();
    let expired = c["expired_packets"].as_u64().unwrap();
    let f = d.replay(&[id.to_string()]);
    let seqs = f.seqs_to(PORT);
    assert_eq!(
        seqs.len() as u64,
        SENT - expired,
        "replay holds what was not expired: {c}"
    );
    assert_eq!(seqs.last(), Some(&(SENT - 1)), "the newest packet is kept");
    assert_eq!(
        seqs,
        (expired..SENT).collect::<Vec<_>>(),
        "the oldest went first"
    );
    for (path, seg) in d.read_segments(id) {
        assert!(
            seg.packets.iter().all(|p| p.caplen == p.origlen),
            "{}",
            path.display()
        );
    }
}

#[test]
fn the_free_space_floor_fails_a_capture_with_nothing_left_to_give_up() {
    if !require_root() {
        return;
    }
    let d = Daemon::builder()
        .tmpfs_data(16 << 20)
        .config("free_space_floor_percent = 25.0\n")
        .start();
    let id = d.init_started(&["lo", "udp port 23701", "--max-size", "2M"]);
    send_udp_seq(23701, 0..1500, 1000);
    d.wait_spooled(id, 1500);

    // Leave 1 MiB free on the 16 MiB filesystem: 3 MiB below the 4 MiB floor, more than
    // the capture's whole spool (about 1.5 MiB) can give back.
    let st = nix::sys::statvfs::statvfs(d.data_dir()).unwrap();
    let avail = st.blocks_available() * st.fragment_size();
    let filler = d.data_dir().join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = avail.saturating_sub(1 << 20);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        std::io::Write::write_all(&mut f, &chunk[..n]).unwrap();
        left -= n as u64;
    }
    drop(f);

    d.wait_state(id, "FAILED");
    let c = d.capture(id);
    let reason = c["reason"].as_str().unwrap();
    assert!(
        reason.contains("floor") && reason.contains("25"),
        "says why: {reason}"
    );
    let expired = c["counters"]["expired_packets"].as_u64().unwrap();
    assert!(expired > 0, "its own oldest segments went first: {c}");

    // Nothing spooled is corrupted: what is left replays whole, newest packet included.
    let replay = d.replay(&[&id.to_string()]);
    assert_eq!(replay.packets.len() as u64, 1500 - expired, "{c}");
    assert_eq!(replay.seqs_to(23701).last(), Some(&1499));
    for (path, file) in d.read_segments(id) {
        assert!(
            !file.packets.is_empty(),
            "{} is a readable segment",
            path.display()
        );
    }

    // With room again, the capture starts and spools again.
    std::fs::remove_file(&filler).unwrap();
    d.ok(&["start", &id.to_string()]);
    assert_eq!(d.state(id), "ACTIVE");
    send_udp_seq(23701, 1500..1600, 1000);
    d.wait_spooled(id, 1600);
}

#[test]
fn a_full_disk_fails_the_capture_that_hit_it_and_corrupts_nothing() {
    if !require_root() {
        return;
    }
    let d = Daemon::builder()
        .tmpfs_data(4 << 20)
        .config("free_space_floor_percent = 0.0\n")
        .start();
    let full = d.init_started(&["lo", "udp port 23711", "--max-size", "1G"]);
    let other = d.init_started(&["lo", "udp port 23712", "--max-size", "1G"]);
    send_udp_seq(23712, 0..10, 100);
    d.wait_spooled(other, 10);

    // About 6 MiB of records into a 4 MiB filesystem, in bounded bursts.
    let mut sent = 0;
    eventually(
        Duration::from_secs(30),
        "the capture fails with disk full",
        || {
            if sent < 6000 {
                send_udp_seq(23711, sent..sent + 500, 1000);
                sent += 500;
            }
            d.state(full) == "FAILED"
        },
    );
    let c = d.capture(full);
    assert!(c["reason"].as_str().unwrap().contains("disk full"), "{c}");

    // The API keeps working and what was spooled reads back whole, in order.
    let replay = d.replay(&[&full.to_string()]);
    let seqs = replay.seqs_to(23711);
    assert!(!seqs.is_empty());
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "an in-order prefix"
    );

    // Once there is room again, the other capture spools on.
    d.ok(&["delete", &full.to_string()]);
    send_udp_seq(23712, 10..20, 100);
    d.wait_spooled(other, 20);
    assert_eq!(
        d.replay(&[&other.to_string()]).seqs_to(23712),
        (0..20).collect::<Vec<_>>()
    );
}
