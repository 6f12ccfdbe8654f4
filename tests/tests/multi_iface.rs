//! Captures on several interfaces at once: recorded as LINUX_SLL2, each record carrying the
//! index of the interface it was seen on, which `list` maps back to the interface's name;
//! interfaces not named are not captured. On the host's interfaces and inside a namespace.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use pcapd_e2e::*;

/// Packets sent on each interface.
const N: u64 = 100;

/// The interface each packet to `port` was seen on, by its sequence number.
fn seen_on(got: &PcapFile, names: &BTreeMap<u32, String>, port: u16) -> Vec<(u64, String)> {
    assert_eq!(got.link_type, LINUX_SLL2, "several interfaces are SLL2");
    got.packets
        .iter()
        .filter_map(|p| {
            let udp = p.udp(got.link_type)?;
            if udp.dst_port != port {
                return None;
            }
            let seq = payload_seq(udp.payload).expect("payload made by the test");
            let index = p.sll2_ifindex();
            let name = names
                .get(&index)
                .unwrap_or_else(|| panic!("index {index} of seq {seq} is not in {names:?}"));
            Some((seq, name.clone()))
        })
        .collect()
}

#[test]
fn two_host_interfaces_in_one_capture() {
    if !require_root() {
        return;
    }
    let (a, b) = (VethPair::create(7), VethPair::create(8));
    let d = Daemon::start();
    let port = free_port();
    let filter = format!("udp port {port}");
    let both = format!("{},{}", a.host(), b.host());

    // Every name is checked: one that does not exist is refused, naming it.
    let err = d.fails(&["init", &format!("{both},nosuch0"), &filter]);
    assert!(err.contains("unknown interface \"nosuch0\""), "{err}");

    let id = d.init_started(&[both.as_str(), filter.as_str()]);
    let c = d.capture(id);
    assert_eq!(c["link_type"], LINUX_SLL2, "{c}");
    assert_eq!(
        c["interfaces"],
        serde_json::json!([a.host(), b.host()]),
        "{c}"
    );
    assert_eq!(
        c["interface"],
        a.host(),
        "the first, for older scripts: {c}"
    );
    assert_eq!(c["target"], both.as_str(), "{c}");
    let applied = c["applied_filter"].as_str().unwrap();
    assert!(
        applied.starts_with("(ifindex ") && applied.ends_with(&format!("and ({filter})")),
        "the kernel keeps only the two interfaces' packets: {applied}"
    );

    // Same port on lo: not one of the capture's interfaces.
    send_udp_seq(port, 1000..1000 + N, 64);
    a.send_udp_seq(port, 0..N, 64);
    b.send_udp_seq(port, N..2 * N, 64);
    let c = d.wait_spooled(id, 2 * N);
    let names = interface_names(&c);
    let got = d.replay(&[id.to_string()]);
    let seen = seen_on(&got, &names, port);
    assert_eq!(
        seen.len() as u64,
        2 * N,
        "only the two interfaces' packets: {seen:?}"
    );
    for (seq, name) in &seen {
        let want = if *seq < N { a.host() } else { b.host() };
        assert_eq!(name, want, "packet {seq} was sent on {want}");
    }
    let mut seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..2 * N).collect::<Vec<_>>());
}

#[test]
fn two_interfaces_inside_a_namespace() {
    if !require_root() {
        return;
    }
    let veth = VethPair::create(9);
    let ns = veth.netns();
    let up = Command::new("ip")
        .args(["-n", ns, "link", "set", "lo", "up"])
        .status()
        .expect("run ip");
    assert!(up.success(), "ip -n {ns} link set lo up: {up}");
    let d = Daemon::start();
    let port = free_port();
    let filter = format!("udp port {port}");
    let both = format!("{},lo", veth.peer());
    let id = d.init_started(&[both.as_str(), filter.as_str(), "--netns", ns]);
    let c = d.capture(id);
    assert_eq!(c["link_type"], LINUX_SLL2, "{c}");
    assert_eq!(c["target"], format!("netns {ns}: {both}"), "{c}");

    // Into the namespace through the veth, and on its own loopback from inside.
    veth.send_udp_seq(port, 0..N, 64);
    in_netns(ns, move || send_udp_seq(port, N..2 * N, 64));
    let c = d.wait_spooled(id, 2 * N);
    let names = interface_names(&c);
    assert_eq!(names.get(&1).map(String::as_str), Some("lo"), "{names:?}");
    let got = d.replay(&[id.to_string()]);
    let seen = seen_on(&got, &names, port);
    for (seq, name) in &seen {
        let want = if *seq < N { veth.peer() } else { "lo" };
        assert_eq!(name, want, "packet {seq} was sent on {want}");
    }
    let mut seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs,
        (0..2 * N).collect::<Vec<_>>(),
        "every packet, on both"
    );
}

#[test]
fn an_interface_made_again_is_captured_under_its_new_index() {
    if !require_root() {
        return;
    }
    // Long enough for a retry step of the capture thread (1 s, 2 s, 4 s ...).
    const RESUME_LIMIT: Duration = Duration::from_secs(45);
    let (a, b) = (VethPair::create(5), VethPair::create(6));
    let d = Daemon::start();
    let port = free_port();
    let filter = format!("udp port {port}");
    let both = format!("{},{}", a.host(), b.host());
    let id = d.init_started(&[both.as_str(), filter.as_str()]);
    let old_index = interface_names(&d.capture(id))
        .into_iter()
        .find(|(_, n)| n == b.host())
        .map(|(i, _)| i)
        .expect("b's index is known");

    b.delete_link();
    let gone = format!("interface {} is gone", b.host());
    eventually(RESUME_LIMIT, "RETRYING, naming the interface", || {
        let c = d.capture(id);
        c["state"] == "RETRYING" && c["reason"] == gone.as_str()
    });
    b.add_link();
    eventually(RESUME_LIMIT, "ACTIVE again", || d.state(id) == "ACTIVE");

    a.send_udp_seq(port, 0..N, 64);
    b.send_udp_seq(port, N..2 * N, 64);
    let c = d.wait_spooled(id, 2 * N);
    let names = interface_names(&c);
    let new_index = names
        .iter()
        .filter(|(_, n)| *n == b.host())
        .map(|(i, _)| *i)
        .max()
        .expect("b's new index is known");
    assert_ne!(
        new_index, old_index,
        "a new link has a new index: {names:?}"
    );
    let seen = seen_on(&d.replay(&[id.to_string()]), &names, port);
    assert_eq!(seen.len() as u64, 2 * N, "{seen:?}");
    for (seq, name) in &seen {
        let want = if *seq < N { a.host() } else { b.host() };
        assert_eq!(name, want, "packet {seq} was sent on {want}");
    }
    let applied = c["applied_filter"].as_str().unwrap();
    assert!(
        applied.contains(&format!("ifindex {new_index}")),
        "the kernel filter has the new index: {applied}"
    );
}

/// Runs `f` on a thread inside the `ip netns` namespace `name`.
fn in_netns(name: &str, f: impl FnOnce() + Send + 'static) {
    let path = format!("/run/netns/{name}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f();
    })
    .join()
    .expect("sending inside the namespace");
}
