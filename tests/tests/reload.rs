//! SIGHUP applies all of a new config file or none of it. A changed `listen` moves the TLS
//! listener and the self-exclusion of every running capture together: the new address
//! serves mutual TLS, the old one refuses connections, `list` shows the new exclusion, and a
//! capture on `lo` sees plain TCP to the old port (no longer pcapd's) but not pcapd's TLS
//! on the new one. A broken file, or one changing what needs a restart, changes nothing.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

use pcapd_e2e::*;

/// How long a moved listener and exclusion may take to show after the reload is logged.
const SETTLE: Duration = Duration::from_secs(10);

/// A daemon whose config file holds a remote listener on `listen` with `certs`; the user
/// filter `tcp` capture `alltcp` on `lo` is running. Returns the daemon and that capture.
fn daemon_listening(certs: &Certs, listen: &str) -> (Daemon, u64) {
    let d = Daemon::builder().config(&certs.listen_toml(listen)).start();
    let id = d.init_started(&["lo", "tcp", "--alias", "alltcp"]);
    (d, id)
}

/// The applied filter `list` shows for capture `id`.
fn applied(d: &Daemon, id: u64) -> String {
    let c = d.capture(id);
    c["applied_filter"]
        .as_str()
        .unwrap_or_else(|| panic!("no applied_filter in {c}"))
        .to_owned()
}

/// Whether a TCP connection to `addr:port` is refused (nothing listens there).
fn refused(addr: Ipv4Addr, port: u16) -> bool {
    match TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(5)) {
        Ok(_) => false,
        Err(e) => e.kind() == ErrorKind::ConnectionRefused,
    }
}

/// A plain TCP exchange with a listener of the test's own on `addr:port`: connect, send a
/// few bytes, close.
fn plain_tcp(addr: Ipv4Addr, port: u16) {
    let listener = TcpListener::bind((addr, port))
        .unwrap_or_else(|e| panic!("listen on {addr}:{port} (pcapd should have let go): {e}"));
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        c.read_to_end(&mut got).expect("read");
        got.len()
    });
    let mut client = TcpStream::connect((addr, port)).expect("connect");
    client.write_all(b"plain tcp").expect("write");
    drop(client);
    assert_eq!(server.join().expect("server thread"), 9);
}

/// IPv4 TCP endpoints (source, source port, destination, destination port) of a packet
/// captured on `lo` (Ethernet framing).
fn tcp_endpoints(p: &Packet) -> Option<(Ipv4Addr, u16, Ipv4Addr, u16)> {
    let d = &p.data;
    if d.len() < 14 + 20 + 4 || d[12..14] != [0x08, 0x00] || d[14 + 9] != 6 {
        return None;
    }
    let l4 = 14 + usize::from(d[14] & 0x0f) * 4;
    let ip = |o: usize| Ipv4Addr::new(d[o], d[o + 1], d[o + 2], d[o + 3]);
    let port = |o: usize| u16::from_be_bytes([d[o], d[o + 1]]);
    Some((ip(14 + 12), port(l4), ip(14 + 16), port(l4 + 2)))
}

/// Packets of the capture's replay to or from `addr:port`.
fn packets_of(d: &Daemon, id: u64, addr: Ipv4Addr, port: u16) -> usize {
    d.replay(&[id.to_string()])
        .packets
        .iter()
        .filter_map(tcp_endpoints)
        .filter(|&(s, sp, t, tp)| (s == addr && sp == port) || (t == addr && tp == port))
        .count()
}

/// Waits until the capture's replay holds at least 3 packets (handshake, data, close) of
/// TCP to or from `addr:port`.
fn wait_captured(d: &Daemon, id: u64, addr: Ipv4Addr, port: u16) {
    eventually_ok(
        DEFAULT_WAIT,
        &format!("capture {id} to see the plain TCP to {addr}:{port}"),
        || match packets_of(d, id, addr, port) {
            n if n >= 3 => Ok(()),
            n => Err(format!("{n} packets; applied filter {}", applied(d, id))),
        },
    );
}

/// Two distinct free ports.
fn two_ports() -> (u16, u16) {
    let a = free_port();
    loop {
        let b = free_port();
        if b != a {
            return (a, b);
        }
    }
}

#[test]
fn a_changed_listen_port_moves_the_listener_and_every_captures_exclusion() {
    if !require_root() {
        return;
    }
    let lo = Ipv4Addr::LOCALHOST;
    let certs = Certs::make();
    let (old, new) = two_ports();
    let (d, id) = daemon_listening(&certs, &format!("127.0.0.1:{old}"));
    certs.add_client_remote(&d, "old", &format!("https://localhost:{old}"), "alice");
    certs.add_client_remote(&d, "new", &format!("https://localhost:{new}"), "alice");
    d.ok(&["list", "old:"]);
    let before = applied(&d, id);
    assert!(has_word(&before, &old.to_string()), "{before}");

    let logged = d.reload_config(&certs.listen_toml(&format!("127.0.0.1:{new}")));
    println!("pcapd logged on SIGHUP:\n{logged}");
    // The exclusion first, before any connection to the new port is made.
    eventually_ok(SETTLE, "the running capture's exclusion to move", || {
        let a = applied(&d, id);
        if has_word(&a, &new.to_string()) && !has_word(&a, &old.to_string()) {
            Ok(())
        } else {
            Err(a)
        }
    });
    assert_eq!(d.state(id), "ACTIVE", "the capture keeps running");
    let after = applied(&d, id);
    println!("applied filter: {before:?} -> {after:?}");

    // The listener moved: the new port serves mutual TLS, the old one refuses.
    eventually_ok(SETTLE, "the listener on the new port", || {
        let out = d.pcap(&["list", "new:"]);
        if out.status.success() {
            Ok(())
        } else {
            Err(out.stderr)
        }
    });
    assert!(
        refused(lo, old),
        "the old listener on port {old} still accepts"
    );
    let err = d.fails(&["list", "old:"]);
    assert!(err.contains(&old.to_string()), "{err}");

    // Plain TCP to the old port is someone else's now, and captured; pcapd's own TLS on
    // the new port is not.
    plain_tcp(lo, old);
    for _ in 0..3 {
        d.ok(&["--json", "list", "new:"]);
    }
    wait_captured(&d, id, lo, old);
    d.ok(&["stop", "alltcp"]);
    assert_eq!(
        packets_of(&d, id, lo, new),
        0,
        "packets of pcapd's own TLS connections on the new port {new} were captured"
    );
}

#[test]
fn a_changed_listen_address_moves_the_listener_and_the_exclusion() {
    if !require_root() {
        return;
    }
    let (lo1, lo2) = (Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 2));
    let certs = Certs::make_for(&["localhost", "127.0.0.2"], &["alice"]);
    let port = free_port();
    let (d, id) = daemon_listening(&certs, &format!("127.0.0.1:{port}"));
    certs.add_client_remote(&d, "one", &format!("https://localhost:{port}"), "alice");
    certs.add_client_remote(&d, "two", &format!("https://127.0.0.2:{port}"), "alice");
    d.ok(&["list", "one:"]);
    assert!(applied(&d, id).contains("127.0.0.1"), "{}", applied(&d, id));

    let logged = d.reload_config(&certs.listen_toml(&format!("127.0.0.2:{port}")));
    println!("pcapd logged on SIGHUP:\n{logged}");
    eventually_ok(SETTLE, "the running capture's exclusion to move", || {
        let a = applied(&d, id);
        if a.contains("127.0.0.2") && !a.contains("127.0.0.1") {
            Ok(())
        } else {
            Err(a)
        }
    });
    eventually_ok(SETTLE, "the listener on 127.0.0.2", || {
        let out = d.pcap(&["list", "two:"]);
        if out.status.success() {
            Ok(())
        } else {
            Err(out.stderr)
        }
    });
    assert!(
        refused(lo1, port),
        "the old listener on 127.0.0.1:{port} still accepts"
    );

    plain_tcp(lo1, port);
    for _ in 0..3 {
        d.ok(&["--json", "list", "two:"]);
    }
    wait_captured(&d, id, lo1, port);
    d.ok(&["stop", "alltcp"]);
    assert_eq!(
        packets_of(&d, id, lo2, port),
        0,
        "packets of pcapd's own TLS connections on 127.0.0.2:{port} were captured"
    );
}

#[test]
fn removing_listen_stops_the_listener_and_the_exclusion() {
    if !require_root() {
        return;
    }
    let lo = Ipv4Addr::LOCALHOST;
    let certs = Certs::make();
    let port = free_port();
    let (d, id) = daemon_listening(&certs, &format!("127.0.0.1:{port}"));
    certs.add_client_remote(&d, "lab", &format!("https://localhost:{port}"), "alice");
    d.ok(&["list", "lab:"]);

    let logged = d.reload_config("");
    println!("pcapd logged on SIGHUP:\n{logged}");
    eventually_ok(SETTLE, "the exclusion to go", || {
        let a = applied(&d, id);
        if a.trim() == "tcp" {
            Ok(())
        } else {
            Err(a)
        }
    });
    eventually(SETTLE, "the listener to close", || refused(lo, port));
    d.fails(&["list", "lab:"]);
    assert_eq!(d.state(id), "ACTIVE");

    plain_tcp(lo, port);
    wait_captured(&d, id, lo, port);
}

#[test]
fn a_broken_config_file_changes_nothing() {
    if !require_root() {
        return;
    }
    let lo = Ipv4Addr::LOCALHOST;
    let certs = Certs::make();
    let (old, new) = two_ports();
    let (d, id) = daemon_listening(&certs, &format!("127.0.0.1:{old}"));
    certs.add_client_remote(&d, "lab", &format!("https://localhost:{old}"), "alice");
    let before = applied(&d, id);

    // A syntax error.
    let broken = format!(
        "{}listen = \n",
        certs.listen_toml(&format!("127.0.0.1:{new}"))
    );
    let logged = d.reload_config(&broken);
    println!("pcapd logged on a syntax error:\n{logged}");
    assert!(
        logged.contains("pcapd.toml"),
        "the log names the file it refused: {logged}"
    );

    // An unknown key beside a new listen address: none of it is applied.
    let unknown = format!(
        "{}listen_typo = true\n",
        certs.listen_toml(&format!("127.0.0.1:{new}"))
    );
    let logged = d.reload_config(&unknown);
    println!("pcapd logged on an unknown key:\n{logged}");
    assert!(
        logged.contains("listen_typo"),
        "the log names the unknown key: {logged}"
    );

    d.ok(&["list", "lab:"]);
    assert!(refused(lo, new), "a refused config opened port {new}");
    assert_eq!(
        applied(&d, id),
        before,
        "a refused config changed the filter"
    );
    // Nothing is waiting to be applied at the next start either.
    d.ok(&["stop", "alltcp"]);
    d.ok(&["start", "alltcp"]);
    assert_eq!(
        applied(&d, id),
        before,
        "a refused config was applied at the next start"
    );
    d.ok(&["list", "lab:"]);
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

#[test]
fn a_change_that_needs_a_restart_is_refused_whole() {
    if !require_root() {
        return;
    }
    let lo = Ipv4Addr::LOCALHOST;
    let certs = Certs::make();
    let (old, new) = two_ports();
    let (d, id) = daemon_listening(&certs, &format!("127.0.0.1:{old}"));
    certs.add_client_remote(&d, "lab", &format!("https://localhost:{old}"), "alice");
    let before = applied(&d, id);

    // max_request_bytes needs a restart; listen alone would not.
    let toml = format!(
        "{}max_request_bytes = 65536\n",
        certs.listen_toml(&format!("127.0.0.1:{new}"))
    );
    let logged = d.reload_config(&toml);
    println!("pcapd logged:\n{logged}");
    assert!(
        logged.to_lowercase().contains("restart") && logged.contains("max_request_bytes"),
        "the log says which change needs a restart: {logged}"
    );

    d.ok(&["list", "lab:"]);
    assert!(
        refused(lo, new),
        "the listen change beside it was applied: port {new} accepts"
    );
    assert_eq!(applied(&d, id), before);
    d.ok(&["stop", "alltcp"]);
    d.ok(&["start", "alltcp"]);
    assert_eq!(
        applied(&d, id),
        before,
        "the refused listen change was applied at the next start"
    );
}
