//! What pcapd allows local clients: at most `max_local_connections` connections to its
//! UNIX socket at once (past it, calls fail with a message naming the limit), and header
//! blocks of at most 16 KiB (past it, an HTTP/2 GOAWAY and the end of the connection).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use pcapd_e2e::*;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const GOAWAY: u8 = 0x7;
const FRAME_SIZE_ERROR: u32 = 0x6;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    b.extend([kind, flags]);
    b.extend(stream.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// Reads one frame: (type, payload); `None` at the end of the stream.
fn read_frame(conn: &mut UnixStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    conn.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    conn.read_exact(&mut payload).ok()?;
    Some((head[3], payload))
}

/// The GOAWAY's error code and debug data, if the server sent one before closing.
fn goaway_until_closed(conn: &mut UnixStream) -> Option<(u32, String)> {
    let mut goaway = None;
    while let Some((kind, payload)) = read_frame(conn) {
        if kind == GOAWAY && payload.len() >= 8 {
            let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
            goaway = Some((code, String::from_utf8_lossy(&payload[8..]).into_owned()));
        }
    }
    goaway
}

fn connect(socket: &Path) -> UnixStream {
    let conn = UnixStream::connect(socket).expect("connect to pcapd's socket");
    conn.set_read_timeout(Some(DEFAULT_WAIT)).unwrap();
    conn
}

/// An HTTP/2 connection that said hello and then does nothing.
fn idle_connection(socket: &Path) -> UnixStream {
    let mut conn = connect(socket);
    conn.write_all(&[PREFACE, &frame(0x4, 0, 0, &[])].concat())
        .unwrap();
    let (kind, _) = read_frame(&mut conn).expect("the server's SETTINGS");
    assert_eq!(kind, 0x4, "the server's preface is a SETTINGS frame");
    conn
}

#[test]
fn connections_over_max_local_connections_are_refused_until_one_closes() {
    let d = Daemon::builder()
        .config("max_local_connections = 4\n")
        .start();
    // Four idle connections hold every place. A connection just closed (the harness's
    // probe of the socket) gives its place back a moment later: pcapd logs a refusal if
    // one of the four came before that, and then they are made again.
    let mut idle = Vec::new();
    eventually_ok(DEFAULT_WAIT, "four connections let in", || {
        let before = d.log().len();
        idle = (0..4).map(|_| idle_connection(d.socket())).collect();
        match d.log()[before..].contains("refusing local connections") {
            false => Ok(()),
            true => Err("one was refused".into()),
        }
    });

    let before = d.log().len();
    let err = d.fails(&["list"]);
    assert!(
        err.contains("pcapd refused the connection: 4 local connections are open")
            && err.contains("max_local_connections"),
        "names the limit and the setting: {err}"
    );
    let err = d.fails(&["version"]);
    assert!(err.contains("max_local_connections"), "{err}");
    let log = d.log()[before..].to_owned();
    assert!(
        log.contains("refusing local connections") && log.contains("max_local_connections"),
        "the refusal is logged: {log}"
    );
    assert_eq!(
        log.matches("refusing local connections").count(),
        1,
        "once per burst: {log}"
    );

    drop(idle.pop());
    eventually_ok(DEFAULT_WAIT, "`pcap list` works again", || {
        let out = d.pcap(&["list"]);
        out.status.success().then_some(()).ok_or(out.stderr)
    });
    assert!(d.log().contains("accepting local connections again"));
    // The others are still open.
    for mut conn in idle {
        conn.set_nonblocking(true).unwrap();
        let mut b = [0u8; 4096];
        let end = loop {
            match conn.read(&mut b) {
                Ok(0) => break "closed",
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break "open",
                Err(_) => break "broken",
            }
        };
        assert_eq!(end, "open", "an idle connection was ended");
    }
}

#[test]
fn a_header_block_over_16_kib_ends_the_connection_with_goaway() {
    let d = Daemon::start();
    let mut conn = connect(d.socket());
    // A literal field of 16,400 bytes: the block is over 16 KiB after its second frame.
    let mut block = vec![0x00, 5];
    block.extend_from_slice(b"x-big");
    block.extend([0x7f, 0x91, 0x7f]); // 127 + 0x11 + (0x7f << 7) = 16400
    block.extend(std::iter::repeat_n(b'x', 16_400));
    let (a, b) = block.split_at(16_384);
    let mut wire = [PREFACE, &frame(0x4, 0, 0, &[])].concat();
    wire.extend(frame(0x1, 0, 1, a)); // HEADERS without END_HEADERS
    wire.extend(frame(0x9, 0x4, 1, b)); // CONTINUATION, END_HEADERS
    conn.write_all(&wire).unwrap();
    let (code, _) = goaway_until_closed(&mut conn).expect("a GOAWAY before the end");
    assert_eq!(code, FRAME_SIZE_ERROR);
    // The daemon serves on.
    d.ok(&["list"]);
}
