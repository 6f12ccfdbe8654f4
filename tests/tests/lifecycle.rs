//! A capture's life: init, start, spool, replay, stop, delete; and how aliases name it.

use std::collections::BTreeSet;

use pcapd_e2e::*;

#[test]
fn capture_goes_from_init_to_delete() {
    const X: u16 = 23101;
    const Y: u16 = 23102;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let filter = format!("udp port {X}");
    let id = d.init(&["lo", &filter, "--alias", "life"]);
    let c = d.capture(id);
    assert_eq!(c["state"], "PENDING", "{c}");
    assert_eq!(c["interface"], "lo", "{c}");
    assert_eq!(c["filter"], filter.as_str(), "{c}");
    assert_eq!(c["aliases"], serde_json::json!(["life"]), "{c}");

    d.ok(&["start", "life"]);
    d.wait_state(id, "ACTIVE");
    send_udp(X, 1000, 64);
    send_udp(Y, 500, 64);
    d.wait_spooled(id, 1000);

    let out = d.dir().join("replay.pcap");
    d.ok(&["replay", &id.to_string(), "-w", out.to_str().unwrap()]);
    let f = read_pcap(&out);
    assert_eq!(f.link_type, 1, "lo is Ethernet-framed");
    assert_eq!(f.packets.len(), 1000, "capture counters: {}", d.capture(id));
    assert!(
        f.udp_dst_ports().iter().all(|&p| p == X),
        "only port {X} was asked for"
    );
    let seqs: BTreeSet<u64> = f.seqs_to(X).into_iter().collect();
    assert_eq!(seqs, (0..1000).collect(), "each packet exactly once");
    if let Some(n) = tcpdump_count(&out) {
        assert_eq!(n, 1000, "tcpdump reads the replay");
    }
    assert_eq!(d.counter(id, "spooled_packets"), 1000);

    d.ok(&["stop", &id.to_string()]);
    d.wait_state(id, "PAUSED");
    // A second capture on the same traffic shows when packets sent now have been seen;
    // the paused one must not have taken them.
    let witness = d.init_started(&["lo", &format!("udp dst port {X}")]);
    send_udp(X, 100, 64);
    d.wait_spooled(witness, 100);
    assert_eq!(
        d.counter(id, "spooled_packets"),
        1000,
        "a paused capture keeps still"
    );

    let spool = d.spool_dir(id);
    d.ok(&["delete", "life"]);
    assert!(
        d.try_capture(id).is_none(),
        "deleted capture still listed: {:?}",
        d.list()
    );
    assert!(
        !spool.exists(),
        "delete leaves the spool at {}",
        spool.display()
    );
    let err = d.fails(&["replay", &id.to_string()]);
    assert_unknown_capture(&err, &id.to_string());
    let err = d.fails(&["replay", "life"]);
    assert_unknown_capture(&err, "life");
}

#[test]
fn packets_sent_as_soon_as_start_returns_are_captured() {
    const PORT: u16 = 23107;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let id = d.init(&["lo", &format!("udp port {PORT}")]);
    d.ok(&["start", &id.to_string()]);
    // `pcap start` returning (and `list` saying ACTIVE) means the capture is capturing.
    assert_eq!(d.state(id), "ACTIVE");
    send_udp(PORT, 5, 64);
    let c = d.wait_spooled(id, 5);
    assert_eq!(c["counters"]["spooled_packets"], 5, "{c}");
}

#[test]
fn init_of_an_existing_target_and_filter_adds_an_alias() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let filter = "udp port 23103";
    let first = d.init(&["lo", filter, "--alias", "first"]);
    let second = d.init(&["lo", filter, "--alias", "second"]);
    assert_eq!(
        first, second,
        "no duplicate capture for the same interface and filter"
    );
    assert_eq!(d.list().len(), 1, "{:?}", d.list());
    let aliases: BTreeSet<String> = d.capture(first)["aliases"]
        .as_array()
        .expect("aliases array")
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        aliases,
        BTreeSet::from(["first".to_owned(), "second".to_owned()])
    );

    // Either alias selects it.
    d.ok(&["start", "second"]);
    d.wait_state(first, "ACTIVE");
    d.ok(&["stop", "first"]);
    d.wait_state(first, "PAUSED");
}

#[test]
fn aliases_are_unique_and_never_all_digits() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    d.init(&["lo", "udp port 23104", "--alias", "shared-name"]);

    let err = d.fails(&["init", "lo", "udp port 23105", "--alias", "shared-name"]);
    assert!(err.contains("shared-name"), "names the alias: {err}");
    let lower = err.to_lowercase();
    assert!(
        ["already", "taken", "in use", "exists"]
            .iter()
            .any(|w| lower.contains(w)),
        "says the alias is taken: {err}"
    );

    let err = d.fails(&["init", "lo", "udp port 23106", "--alias", "12345"]);
    assert!(err.contains("12345"), "names the alias: {err}");
    assert!(err.to_lowercase().contains("digit"), "says why: {err}");

    assert_eq!(
        d.list().len(),
        1,
        "failed inits create nothing: {:?}",
        d.list()
    );
}

#[test]
fn version_and_interfaces_come_from_the_daemon() {
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let v = d.ok(&["version"]);
    assert!(v.contains("pcapd"), "names the daemon: {v}");
    assert!(
        v.contains(env!("CARGO_PKG_VERSION")),
        "shows the workspace version: {v}"
    );

    let ifaces = d.ok(&["ifaces"]);
    assert!(has_word(&ifaces, "lo"), "lists lo: {ifaces}");
    assert!(ifaces.contains("127.0.0.1"), "lists lo's address: {ifaces}");
}
