//! Wireshark reads what `pcap listen` and `pcap replay` write, from a pipe as
//! `pcap replay web | wireshark -k -i -` does: every packet decoded, none malformed, for an
//! interface capture (Ethernet on `lo`) and an all-interfaces one (LINUX_SLL2); and
//! `capinfos` finds a replayed file sound.

use std::thread;
use std::time::Duration;

use pcapd_e2e::*;

const LIMIT: Duration = Duration::from_secs(60);

/// tshark prints each packet's UDP destination port, and marks malformed ones (which
/// fails the read, see `tshark_stdin`).
const FIELDS: &[&str] = &["-T", "fields", "-e", "udp.dstport", "-e", "_ws.malformed"];

/// `pcap listen ID --count N | tshark -r -` while traffic goes to `port`; returns the UDP
/// destination port tshark decoded in each packet.
fn listen_through_tshark(d: &Daemon, id: u64, n: usize, port: u16) -> Vec<String> {
    let mut listen = d.spawn_piped(&["listen", &id.to_string(), "--count", &n.to_string()]);
    let pipe = listen.stdout();
    let tshark = thread::spawn(move || {
        tshark_stdin(
            pipe,
            &["-T", "fields", "-e", "udp.dstport"],
            "pcap listen output",
        )
    });
    // Traffic until listen has its packets; those sent before it was connected are not its.
    eventually(LIMIT, "pcap listen to get its packets", || {
        if listen.try_status().is_some() {
            return true;
        }
        send_udp(port, 5, 64);
        false
    });
    let status = listen.wait(LIMIT);
    assert!(status.success(), "pcap listen: {}", listen.stderr());
    tshark.join().expect("tshark thread")
}

/// `pcap replay ID | tshark -r -`; returns the UDP destination port of each packet.
fn replay_through_tshark(d: &Daemon, id: u64) -> Vec<String> {
    let mut replay = d.spawn_piped(&["replay", &id.to_string()]);
    let pipe = replay.stdout();
    let ports = tshark_stdin(pipe, FIELDS, "pcap replay output");
    let status = replay.wait(LIMIT);
    assert!(status.success(), "pcap replay: {}", replay.stderr());
    ports
}

#[test]
fn tshark_decodes_every_packet_of_listen_and_replay() {
    const PORT: u16 = 24401;
    if !require_root() {
        return;
    }
    let d = Daemon::start();
    let filter = format!("udp port {PORT}");
    let on_lo = d.init_started(&["lo", &filter]);
    let on_all = d.init_started(&["", &filter]);
    let port = PORT.to_string();

    for (id, what) in [(on_lo, "lo"), (on_all, "all interfaces")] {
        let ports = listen_through_tshark(&d, id, 40, PORT);
        assert_eq!(ports.len(), 40, "tshark read 40 packets listened on {what}");
        assert!(
            ports.iter().all(|p| p.trim_end() == port),
            "tshark decoded each packet on {what} as UDP to {PORT}: {ports:?}"
        );
    }

    send_udp(PORT, 300, 200);
    for id in [on_lo, on_all] {
        d.ok(&["stop", &id.to_string()]);
        d.wait_state(id, "PAUSED");
    }
    for (id, link_type) in [(on_lo, 1), (on_all, 276)] {
        let spooled = d.counter(id, "spooled_packets");
        assert!(spooled >= 300, "capture {id} spooled {spooled}");
        let ports = replay_through_tshark(&d, id);
        assert_eq!(
            ports.len() as u64,
            spooled,
            "tshark read every spooled packet of capture {id}"
        );
        assert!(ports.iter().all(|p| p.trim_end() == port), "{ports:?}");

        let file = d.dir().join(format!("{id}.pcap"));
        d.ok(&["replay", &id.to_string(), "-w", file.to_str().unwrap()]);
        assert_eq!(capinfos_packets(&file), spooled, "capinfos on capture {id}");
        assert_eq!(tshark_count(&file) as u64, spooled);
        assert_eq!(read_pcap(&file).link_type, link_type);
    }
}
