//! Real traffic on loopback, bounded and lightly paced so that a burst of a few thousand
//! packets is not lost in the kernel before a capture sees it. Each UDP payload carries a
//! sequence number, so a test can tell a duplicate or a gap from a miscount.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::ops::Range;
use std::thread;
use std::time::Duration;

/// First bytes of every UDP payload the tests send; the sequence number follows.
pub const PAYLOAD_MAGIC: [u8; 4] = *b"e2e!";

/// Packets sent between short pauses.
const BURST: u64 = 100;

/// A payload of `len` bytes (at least 12) carrying `seq`.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len.max(12)];
    p[..4].copy_from_slice(&PAYLOAD_MAGIC);
    p[4..12].copy_from_slice(&seq.to_be_bytes());
    p
}

/// The sequence number in a payload made by [`payload`].
pub fn payload_seq(p: &[u8]) -> Option<u64> {
    if p.len() < 12 || p[..4] != PAYLOAD_MAGIC {
        return None;
    }
    Some(u64::from_be_bytes(p[4..12].try_into().ok()?))
}

/// Sends `n` UDP datagrams of `payload_len` bytes from 127.0.0.1 to 127.0.0.1:`dst_port`,
/// with sequence numbers 0..n.
pub fn send_udp(dst_port: u16, n: usize, payload_len: usize) {
    send_udp_seq(dst_port, 0..n as u64, payload_len);
}

/// Sends one UDP datagram per sequence number in `seqs` to 127.0.0.1:`dst_port`.
pub fn send_udp_seq(dst_port: u16, seqs: Range<u64>, payload_len: usize) {
    // A bound receiver keeps the kernel from answering with ICMP port unreachable; it is
    // never read, its buffer overflowing does not matter to a capture.
    let _receiver = UdpSocket::bind(("127.0.0.1", dst_port)).ok();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind UDP sender");
    let dst = ("127.0.0.1", dst_port);
    for seq in seqs {
        let p = payload(seq, payload_len);
        sock.send_to(&p, dst)
            .unwrap_or_else(|e| panic!("send UDP to port {dst_port}: {e}"));
        if seq % BURST == BURST - 1 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Opens a TCP connection to a listener on 127.0.0.1:`port` and writes `n_messages`
/// messages of 16 bytes, each in its own segment; returns the bytes the listener received.
pub fn send_tcp(port: u16, n_messages: usize) -> usize {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("listen on 127.0.0.1:{port}: {e}"));
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        conn.read_to_end(&mut got).expect("read from client");
        got.len()
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    client.set_nodelay(true).expect("TCP_NODELAY");
    for i in 0..n_messages {
        let msg = format!("message {i:07}\n");
        client.write_all(msg.as_bytes()).expect("write");
        if i % 100 == 99 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let received = server.join().expect("TCP server thread");
    assert_eq!(
        received,
        n_messages * 16,
        "TCP listener on port {port} lost data"
    );
    received
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}
