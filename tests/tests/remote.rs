//! Remote access: pcapd serving mutual TLS on 127.0.0.1, certificates made by
//! `pcapd tls`, and `pcap` driving it through a remote from its remotes file. Also
//! self-exclusion: no capture sees pcapd's own remote connections.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use pcapd_e2e::*;

#[test]
fn every_command_works_over_mutual_tls() {
    if !require_root() {
        return;
    }
    let certs = Certs::make();
    let port = free_port();
    let d = certs.daemon(port);
    certs.add_remote(
        &d,
        "lab",
        &format!("https://localhost:{port}"),
        &certs.tls,
        &certs.tls,
        "alice",
    );
    let listed = d.ok(&["remote", "list"]);
    assert!(
        listed.contains("lab") && listed.contains(&port.to_string()),
        "{listed}"
    );

    assert!(d.ok(&["version", "lab:"]).contains("pcapd"));
    assert!(d.ok(&["ifaces", "lab:"]).contains("lo"));
    let out = d.ok(&["init", "lab:lo", "udp port 23901", "--alias", "web"]);
    let id: u64 = out.lines().next().unwrap().trim().parse().unwrap();
    d.ok(&["start", "lab:web"]);
    assert_eq!(d.state(id), "ACTIVE");
    let owner = d.capture(id)["owner"].as_str().unwrap().to_owned();
    assert!(
        owner.contains("alice"),
        "the certificate name owns the capture: {owner}"
    );

    send_udp_seq(23901, 0..500, 64);
    d.wait_spooled(id, 500);
    let replay = d.client().ok_bytes(&["replay", "lab:web"]);
    let file = PcapFile::from_bytes(&replay.stdout);
    assert_eq!(file.seqs_to(23901), (0..500).collect::<Vec<_>>());

    let out_file = d.dir().join("listen.pcap");
    let mut listen = d.spawn_to_file(&["listen", "lab:web", "--count", "100"], &out_file);
    eventually(
        DEFAULT_WAIT,
        "the remote listener gets its 100 packets",
        || {
            send_udp_seq(23901, 500..520, 64);
            listen.try_status().is_some()
        },
    );
    assert!(listen.wait(DEFAULT_WAIT).success(), "{}", listen.stderr());
    assert_eq!(read_pcap(&out_file).packets.len(), 100);

    let listed = d.ok(&["--json", "list", "lab:"]);
    assert!(listed.contains("\"web\""), "{listed}");
    d.ok(&["stop", "lab:web"]);
    assert_eq!(d.state(id), "PAUSED");
    d.ok(&["delete", "lab:web"]);
    assert!(d.list().is_empty());
    d.ok(&["remote", "remove", "lab"]);
    let err = d.fails(&["list", "lab:"]);
    assert!(err.contains("lab"), "{err}");
}

#[test]
fn clients_without_the_right_certificate_are_refused() {
    if !require_root() {
        return;
    }
    let certs = Certs::make();
    let port = free_port();
    let d = certs.daemon(port);
    let url = format!("https://localhost:{port}");

    // A certificate from another CA: the server refuses it, and pcap says so.
    certs.add_remote(&d, "evil", &url, &certs.tls, &certs.other, "mallory");
    let err = d.fails(&["list", "evil:"]);
    assert!(
        err.contains("client certificate") && err.contains("mallory.pem"),
        "{err}"
    );

    // The server's certificate checked against the wrong CA.
    certs.add_remote(&d, "wrongca", &url, &certs.other, &certs.tls, "alice");
    let err = d.fails(&["list", "wrongca:"]);
    assert!(
        err.contains("not signed by the CA") && err.contains("other/ca.pem"),
        "{err}"
    );

    // The server's certificate is for localhost, not for 127.0.0.1.
    certs.add_remote(
        &d,
        "byip",
        &format!("https://127.0.0.1:{port}"),
        &certs.tls,
        &certs.tls,
        "alice",
    );
    let err = d.fails(&["list", "byip:"]);
    assert!(
        err.contains("not valid for") && err.contains("127.0.0.1"),
        "{err}"
    );

    // Nobody listening.
    let closed = free_port();
    certs.add_remote(
        &d,
        "gone",
        &format!("https://localhost:{closed}"),
        &certs.tls,
        &certs.tls,
        "alice",
    );
    let err = d.fails(&["list", "gone:"]);
    assert!(
        err.contains(&closed.to_string()),
        "names what it could not reach: {err}"
    );

    // An unknown remote is listed against the known ones.
    let err = d.fails(&["list", "nosuch:"]);
    assert!(err.contains("nosuch") && err.contains("evil"), "{err}");

    // No client certificate at all: the handshake completes from the client's side, then
    // the server refuses with an alert before any request is read.
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(certs.tls.join("ca.pem")).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let mut buf = [0u8; 64];
    let read = tls.read(&mut buf);
    assert!(
        matches!(&read, Err(e) if e.to_string().to_lowercase().contains("certificate")),
        "a client without a certificate gets a certificate alert, got {read:?}"
    );

    // Plaintext HTTP/2: no HTTP/2 answer, only a TLS alert or a closed connection.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "plaintext gets no HTTP/2 answer: {answer:?}"
    );

    // None of this reached the API: nothing was created, and the daemon is fine.
    assert!(d.list().is_empty());
    assert!(
        d.log().contains("TLS handshake refused"),
        "refusals are logged"
    );
}

/// IPv4 TCP endpoints of a packet captured on `lo` (Ethernet framing).
fn tcp_endpoints(p: &Packet) -> Option<([u8; 4], u16, [u8; 4], u16)> {
    let d = &p.data;
    if d.len() < 14 + 20 + 4 || d[12..14] != [0x08, 0x00] || d[14 + 9] != 6 {
        return None;
    }
    let ihl = usize::from(d[14] & 0x0f) * 4;
    let l4 = 14 + ihl;
    let ip = |o: usize| [d[o], d[o + 1], d[o + 2], d[o + 3]];
    let port = |o: usize| u16::from_be_bytes([d[o], d[o + 1]]);
    Some((ip(14 + 12), port(l4), ip(14 + 16), port(l4 + 2)))
}

#[test]
fn captures_never_see_pcapds_own_remote_connections() {
    if !require_root() {
        return;
    }
    let certs = Certs::make();
    let port = free_port();
    let d = certs.daemon(port);
    certs.add_remote(
        &d,
        "lab",
        &format!("https://localhost:{port}"),
        &certs.tls,
        &certs.tls,
        "alice",
    );

    let all_tcp = d.init_started(&["lo", "tcp", "--alias", "alltcp"]);
    let applied = d.capture(all_tcp)["applied_filter"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        applied.contains("not (") && applied.contains(&port.to_string()),
        "list shows the applied filter: {applied}"
    );
    let blast = d.init_started(&["lo", "udp port 23902", "--alias", "blast"]);

    // A remote listen streaming thousands of packets over TLS on this very interface.
    let out_file = d.dir().join("remote-listen.pcap");
    let mut listen = d.spawn_to_file(&["listen", "lab:blast", "--count", "3000"], &out_file);
    let mut next = 0;
    eventually(
        Duration::from_secs(30),
        "the remote listen gets 3000 packets",
        || {
            send_udp_seq(23902, next..next + 500, 200);
            next += 500;
            listen.try_status().is_some()
        },
    );
    assert!(listen.wait(DEFAULT_WAIT).success(), "{}", listen.stderr());
    assert_eq!(read_pcap(&out_file).packets.len(), 3000);
    let replay = d.client().ok_bytes(&["replay", "lab:blast"]);
    assert!(PcapFile::from_bytes(&replay.stdout).packets.len() >= 3000);

    // Plain TCP to the same port number on another loopback address, and other TCP.
    let other = TcpListener::bind(("127.0.0.2", port)).unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = other.accept().unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        got.len()
    });
    let mut client = TcpStream::connect(("127.0.0.2", port)).unwrap();
    client.write_all(b"same port, another address").unwrap();
    drop(client);
    assert_eq!(server.join().unwrap(), 26);
    send_tcp(23903, 20);

    d.wait_spooled(all_tcp, 10);
    d.ok(&["stop", "alltcp"]);
    let file = d.replay(&["alltcp"]);
    let lo1 = [127, 0, 0, 1];
    let eps: Vec<_> = file.packets.iter().filter_map(tcp_endpoints).collect();
    let own = eps
        .iter()
        .filter(|(s, sp, dst, dp)| (*s == lo1 && *sp == port) || (*dst == lo1 && *dp == port))
        .count();
    assert_eq!(
        own, 0,
        "packets of pcapd's own TLS connections were captured"
    );
    let same_port = eps
        .iter()
        .filter(|e| e.2 == [127, 0, 0, 2] && e.3 == port)
        .count();
    assert!(
        same_port >= 3,
        "TCP to 127.0.0.2:{port} is captured (handshake, data, FIN): {same_port}"
    );
    assert!(
        eps.iter().any(|e| e.3 == 23903),
        "other TCP on loopback is captured"
    );
    let _ = blast;
}

#[test]
fn a_remote_captures_inside_a_namespace() {
    const PORT: u16 = 23951;
    const N: u64 = 100;
    if !require_root() {
        return;
    }
    let veth = VethPair::create(1);
    let certs = Certs::make();
    let port = free_port();
    let d = certs.daemon(port);
    let url = format!("https://localhost:{port}");
    certs.add_remote(&d, "lab", &url, &certs.tls, &certs.tls, "alice");

    // The far end exists only inside the namespace: the remote's daemon enters it.
    let listed = d.ok(&["--json", "ifaces", "lab:", "--netns", veth.netns()]);
    assert!(listed.contains(veth.peer()), "{listed}");
    let target = format!("lab:{}", veth.peer());
    let filter = format!("udp port {PORT}");
    let out = d.ok(&[
        "init",
        &target,
        &filter,
        "--netns",
        veth.netns(),
        "--alias",
        "inner",
    ]);
    let id: u64 = out.lines().next().unwrap().trim().parse().unwrap();
    d.ok(&["start", "lab:inner"]);
    assert_eq!(
        d.capture(id)["target"],
        format!("netns {}: {}", veth.netns(), veth.peer())
    );
    veth.send_udp_seq(PORT, 0..N, 64);
    d.wait_spooled(id, N);
    let replay = d.client().ok_bytes(&["replay", "lab:inner"]);
    let file = PcapFile::from_bytes(&replay.stdout);
    assert_eq!(file.seqs_to(PORT), (0..N).collect::<Vec<_>>());
}
