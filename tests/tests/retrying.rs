//! RETRYING: a capture whose interface disappears or goes down waits, says why, keeps its
//! spool, and resumes by itself when the interface is back.

use std::time::{Duration, Instant};

use pcapd_e2e::*;
use serde_json::Value;

/// Backoff is 1 s, 2 s, 4 s ... capped at 30 s: one full step and then some.
const RESUME_LIMIT: Duration = Duration::from_secs(45);
/// How long the interface stays away, during which the capture must stay RETRYING.
const AWAY: Duration = Duration::from_secs(3);

#[test]
fn a_capture_retries_while_its_interface_is_gone_and_resumes_when_it_is_back() {
    const PORT: u16 = 24101;
    const N: u64 = 500;
    const M: u64 = 300;
    if !require_root() {
        return;
    }
    let veth = VethPair::create(1);
    let d = Daemon::start();
    let id = d.init_started(&[veth.host(), &format!("udp port {PORT}")]);
    veth.send_udp_seq(PORT, 0..N, 100);
    d.wait_spooled(id, N);
    let before = d.replay(&[id.to_string()]);
    assert_eq!(before.seqs_to(PORT), (0..N).collect::<Vec<_>>());

    veth.delete_link();
    retrying_with_a_reason(&d, id, "interface deleted");
    assert_eq!(
        d.replay(&[id.to_string()]),
        before,
        "the spool keeps what came before while the interface is gone"
    );

    veth.add_link();
    let back = Instant::now();
    wait_for_state(&d, id, "ACTIVE", RESUME_LIMIT);
    println!(
        "interface re-created: ACTIVE again after {:?}",
        back.elapsed()
    );
    assert_eq!(
        d.capture(id)["reason"].as_str().unwrap_or(""),
        "",
        "an ACTIVE capture has no reason left over"
    );

    veth.send_udp_seq(PORT, N..N + M, 100);
    d.wait_spooled(id, N + M);
    let after = d.replay(&[id.to_string()]);
    assert_eq!(
        after.seqs_to(PORT),
        (0..N + M).collect::<Vec<_>>(),
        "new packets are appended after the old ones, none lost or repeated"
    );
    assert_eq!(
        after.packets[..N as usize],
        before.packets[..],
        "old packets unchanged"
    );

    d.ok(&["stop", &id.to_string()]);
    d.wait_state(id, "PAUSED");
    let on_disk: Vec<u64> = d
        .read_segments(id)
        .iter()
        .flat_map(|(_, f)| f.seqs_to(PORT))
        .collect();
    assert_eq!(
        on_disk,
        (0..N + M).collect::<Vec<_>>(),
        "the segments, oldest first, hold the packets in order"
    );
}

#[test]
fn a_capture_retries_while_its_interface_is_down_and_resumes_when_it_is_up() {
    const PORT: u16 = 24103;
    const N: u64 = 200;
    const M: u64 = 200;
    if !require_root() {
        return;
    }
    let veth = VethPair::create(2);
    let d = Daemon::start();
    let id = d.init_started(&[veth.host(), &format!("udp port {PORT}")]);
    veth.send_udp_seq(PORT, 0..N, 100);
    d.wait_spooled(id, N);

    veth.set_up(false);
    retrying_with_a_reason(&d, id, "interface down");

    veth.set_up(true);
    let back = Instant::now();
    wait_for_state(&d, id, "ACTIVE", RESUME_LIMIT);
    println!("interface up: ACTIVE again after {:?}", back.elapsed());

    veth.send_udp_seq(PORT, N..N + M, 100);
    d.wait_spooled(id, N + M);
    assert_eq!(
        d.replay(&[id.to_string()]).seqs_to(PORT),
        (0..N + M).collect::<Vec<_>>(),
        "the capture goes on where it left off"
    );
}

#[test]
fn a_capture_started_on_a_down_interface_waits_for_it_to_come_up() {
    const PORT: u16 = 24106;
    const N: u64 = 200;
    if !require_root() {
        return;
    }
    let veth = VethPair::create(3);
    veth.set_up(false);
    let d = Daemon::start();
    let id = d.init(&[veth.host(), &format!("udp port {PORT}")]);
    d.ok(&["start", &id.to_string()]);
    retrying_with_a_reason(&d, id, "started while down");

    veth.set_up(true);
    let back = Instant::now();
    wait_for_state(&d, id, "ACTIVE", RESUME_LIMIT);
    println!("interface up: ACTIVE after {:?}", back.elapsed());
    veth.send_udp_seq(PORT, 0..N, 100);
    d.wait_spooled(id, N);
    assert_eq!(
        d.replay(&[id.to_string()]).seqs_to(PORT),
        (0..N).collect::<Vec<_>>()
    );
}

/// Waits until the capture is listed in `state`; returns it as listed.
fn wait_for_state(d: &Daemon, id: u64, state: &str, timeout: Duration) -> Value {
    let mut last = Value::Null;
    eventually_ok(timeout, &format!("capture {id} to be {state}"), || {
        last = d.capture(id);
        if last["state"] == state {
            Ok(())
        } else {
            Err(last.to_string())
        }
    });
    last
}

/// Asserts that the capture is listed in `state` all through the next `span`.
/// Waits for `id` to be RETRYING with a reason, and checks it stays so while the daemon
/// keeps answering; `what` names the outage in the test's output.
fn retrying_with_a_reason(d: &Daemon, id: u64, what: &str) {
    let retrying = wait_for_state(d, id, "RETRYING", DEFAULT_WAIT);
    let reason = retrying["reason"].as_str().unwrap_or("");
    println!("{what}: RETRYING ({reason})");
    assert!(
        !reason.trim().is_empty(),
        "a RETRYING capture says why: {retrying}"
    );
    stays_in_state(d, id, "RETRYING", AWAY);
    daemon_answers(d, id, "RETRYING");
}

fn stays_in_state(d: &Daemon, id: u64, state: &str, span: Duration) {
    let until = Instant::now() + span;
    while Instant::now() < until {
        let c = d.capture(id);
        assert_eq!(
            c["state"], state,
            "capture {id} should stay {state} while its interface is away: {c}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The daemon still answers, and says the same in the table as in JSON.
fn daemon_answers(d: &Daemon, id: u64, state: &str) {
    d.ok(&["ifaces"]);
    d.ok(&["version"]);
    let table = d.ok(&["list"]);
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.to_string().as_str()))
        .unwrap_or_else(|| panic!("capture {id} is not in the table:\n{table}"));
    assert!(row.contains(state), "pcap list shows the state: {row:?}");
}
