//! Replay by handing over the segment files: for a client on the local socket, the spool's
//! segments are passed as read-only descriptors (SCM_RIGHTS) on a UNIX socket of their
//! own, and the client reads them itself. Every record then crosses one copy into the
//! client instead of three (disk cache to the daemon, through the stream, out of it),
//! and a replay needs no thread here while the client reads.
//!
//! The socket is an abstract one with a random name, bound for this one replay and
//! accepted once: the peer must be the user who made the Replay call (SO_PEERCRED) and
//! send the token the call was answered with. Descriptors go out a few at a time, when
//! the client asks, so that neither side holds many open files. A descriptor keeps its
//! segment readable even if retention removes the file meanwhile.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use pcap_core::api::v1 as api;
use pcap_core::domain::ReplaySpec;
use pcap_core::segment::{self, SegmentName};
use prost::Message;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::select::Selection;
use super::{Header, Item, Items, CLIENT_QUEUE};
use crate::registry::ReplaySource;
use crate::spool::list_segments;
use crate::store::SegmentMeta;
use crate::{Error, Result};

/// Descriptors per message: well under the kernel's limit of 253, and few enough for
/// a client with the default limit of 1024 open files.
const FILES_PER_MESSAGE: usize = 32;

/// How long the client has to connect and send its token once told where.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// Length of the token, and of the random part of the socket's name.
const SECRET_LEN: usize = 16;

/// Replays served by handing the files over, and the files handed over, since the daemon
/// started.
static HANDOFFS: AtomicU64 = AtomicU64::new(0);
static FILES: AtomicU64 = AtomicU64::new(0);

/// Replays whose segment files were handed over, and how many files, for the metrics.
pub fn counters() -> (u64, u64) {
    (HANDOFFS.load(Relaxed), FILES.load(Relaxed))
}

/// What a Replay call is answered with, after its header, when the files are handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The abstract socket's name, without its leading NUL.
    pub socket: String,
    pub token: Vec<u8>,
    /// The replay's last sequence number.
    pub upto_seq: u64,
}

/// Whether `spec` can be served by handing over the files: it asks for it, reads the
/// spool only, and selects by sequence and time alone, which the client can do.
pub fn applies(spec: &ReplaySpec) -> bool {
    spec.segment_handoff && spec.raw_records && !spec.live && spec.filter.is_empty()
}

/// A socket bound for one replay's handoff, and what the client is told about it.
pub struct Socket {
    listener: UnixListener,
    offer: Offer,
}

impl Socket {
    /// Binds a fresh abstract socket with a random name, and makes the token for it, for a
    /// replay up to `upto_seq`.
    pub fn bind(upto_seq: u64) -> Result<Socket> {
        let mut secret = [0u8; 2 * SECRET_LEN];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut secret))
            .map_err(|e| Error::io("/dev/urandom", e))?;
        let hex: String = secret[..SECRET_LEN]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let name = format!("pcapd-replay-{hex}");
        let unavailable =
            |e: std::io::Error| Error::Unavailable(format!("cannot bind the handoff socket: {e}"));
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(&name).map_err(unavailable)?;
        let listener = std::os::unix::net::UnixListener::bind_addr(&addr).map_err(unavailable)?;
        listener.set_nonblocking(true).map_err(unavailable)?;
        Ok(Socket {
            listener: UnixListener::from_std(listener).map_err(unavailable)?,
            offer: Offer {
                socket: name,
                token: secret[SECRET_LEN..].to_vec(),
                upto_seq,
            },
        })
    }
}

/// Serves the replay `spec` of `src` to the local user `uid` by handing its segment files
/// over on `socket`; `hold` is kept until the client is done with them.
pub fn replay(
    socket: Socket,
    src: ReplaySource,
    spec: &ReplaySpec,
    uid: u32,
    hold: impl Send + 'static,
) -> Items {
    replay_within(socket, src, spec, uid, hold, CONNECT_WITHIN)
}

/// [`replay`], the client given `within` to connect and send its token.
fn replay_within(
    socket: Socket,
    src: ReplaySource,
    spec: &ReplaySpec,
    uid: u32,
    hold: impl Send + 'static,
    within: Duration,
) -> Items {
    let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
    let header = Header {
        capture_id: src.id,
        link_type: src.link_type,
        snaplen: src.snaplen,
    };
    let sel = Selection::replay(spec, src.upto_seq, None);
    let Socket { listener, offer } = socket;
    let token = offer.token.clone();
    tokio::spawn(async move {
        let _hold = hold;
        for item in [Item::Header(header), Item::Handoff(offer)] {
            if tx.send(Ok(item)).await.is_err() {
                return;
            }
        }
        let conn = tokio::select! {
            conn = accept(&listener, uid, &token, within) => conn,
            _ = tx.closed() => return,
        };
        drop(listener);
        if conn.is_ok() {
            HANDOFFS.fetch_add(1, Relaxed);
        }
        let served = match conn {
            Ok(conn) => serve(conn, &src.dir, src.catalog, sel).await,
            Err(e) => Err(e),
        };
        match served {
            Ok(files) => {
                tracing::debug!(capture.id = src.id, files, "segment files handed over")
            }
            Err(e) => {
                tracing::info!(capture.id = src.id, error = %e, "segment handoff failed");
                let _ = tx.send(Err(e)).await;
            }
        }
    });
    rx
}

/// The client's connection, once it proved to be the caller, `within` the time given: the
/// same user, and the token.
async fn accept(
    listener: &UnixListener,
    uid: u32,
    token: &[u8],
    within: Duration,
) -> Result<UnixStream> {
    let late = || {
        Error::Unavailable(format!(
            // Debug prints it as "10s".
            "the client did not fetch the segment files within {within:?}"
        ))
    };
    let proven = async {
        let (mut conn, _) = listener
            .accept()
            .await
            .map_err(|e| Error::Unavailable(format!("cannot accept the handoff: {e}")))?;
        let peer = conn
            .peer_cred()
            .map_err(|e| Error::Unavailable(format!("cannot tell who connected: {e}")))?;
        if peer.uid() != uid {
            return Err(Error::PermissionDenied(format!(
                "the segment files of this replay are for uid {uid}, and uid {} came for them",
                peer.uid()
            )));
        }
        let mut got = vec![0u8; token.len()];
        conn.read_exact(&mut got)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot read the handoff token: {e}")))?;
        if got != token {
            return Err(Error::PermissionDenied(
                "the handoff token does not match this replay's".into(),
            ));
        }
        Ok(conn)
    };
    tokio::time::timeout(within, proven)
        .await
        .map_err(|_| late())?
}

/// Sends the wanted segments' descriptors, a message at a time as the client asks, then
/// waits for it to close the connection. Returns the number of files handed over.
async fn serve(
    mut conn: UnixStream,
    dir: &Path,
    catalog: Vec<SegmentMeta>,
    sel: Selection,
) -> Result<usize> {
    let names = wanted(dir, catalog, sel).await?;
    let mut sent = 0usize;
    let mut batches = names.chunks(FILES_PER_MESSAGE).peekable();
    loop {
        let batch = batches.next().unwrap_or(&[]);
        let last = batches.peek().is_none();
        let opened = open_all(dir, batch.to_vec()).await?;
        let files = api::SegmentFiles {
            first_sequence: opened.iter().map(|(seq, _)| *seq).collect(),
            last,
        };
        let fds: Vec<RawFd> = opened.iter().map(|(_, f)| f.as_raw_fd()).collect();
        send(&conn, &files, &fds).await?;
        sent += opened.len();
        FILES.fetch_add(opened.len() as u64, Relaxed);
        drop(opened);
        // One byte asks for the next message; the end of the connection says the client
        // is done (or gone), after the last message or before.
        let mut ask = [0u8; 1];
        let n = conn.read(&mut ask).await.unwrap_or(0);
        if n == 0 || last {
            return Ok(sent);
        }
    }
}

/// The spool's segments in order, without those the catalog shows to hold nothing wanted.
async fn wanted(dir: &Path, catalog: Vec<SegmentMeta>, sel: Selection) -> Result<Vec<SegmentName>> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let catalog: HashMap<u64, &SegmentMeta> =
            catalog.iter().map(|s| (s.first_seq, s)).collect();
        Ok(list_segments(&dir)?
            .into_iter()
            .map(|(name, _)| name)
            .take_while(|name| !sel.is_past(name.first_seq))
            .filter(|name| catalog.get(&name.first_seq).is_none_or(|m| sel.may_want(m)))
            .collect())
    })
    .await
    .map_err(|e| Error::Internal(format!("listing the spool failed: {e}")))?
}

/// Opens `names` for reading: a segment closed since it was listed under its new name,
/// one removed by retention meanwhile left out.
async fn open_all(dir: &Path, names: Vec<SegmentName>) -> Result<Vec<(u64, File)>> {
    let dir: PathBuf = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let mut tried = vec![dir.join(name.file_name())];
            if name.open {
                tried.push(segment::closed_path(&dir, name.first_seq));
            }
            for path in tried {
                match File::open(&path) {
                    Ok(f) => {
                        out.push((name.first_seq, f));
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(path, e)),
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| Error::Internal(format!("opening the segments failed: {e}")))?
}

/// Sends one framed message with `fds` on its first byte.
async fn send(conn: &UnixStream, files: &api::SegmentFiles, fds: &[RawFd]) -> Result<()> {
    let body = files.encode_to_vec();
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    let lost = |e: std::io::Error| Error::Unavailable(format!("cannot hand the files over: {e}"));
    conn.writable().await.map_err(lost)?;
    let written = conn
        .async_io(Interest::WRITABLE, || {
            let iov = [std::io::IoSlice::new(&frame)];
            let rights = [ControlMessage::ScmRights(fds)];
            let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
            sendmsg::<UnixAddr>(conn.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
                .map_err(std::io::Error::from)
        })
        .await
        .map_err(lost)?;
    if written != frame.len() {
        // The connection holds at most one small message at a time: this does not happen.
        return Err(lost(std::io::Error::new(
            ErrorKind::WriteZero,
            format!("{written} of {} bytes sent", frame.len()),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use pcap_core::domain::Selector;
    use std::io::{IoSliceMut, Write};
    use std::os::unix::net::UnixStream as StdStream;

    fn spec(since_unix_ns: Option<i64>) -> ReplaySpec {
        ReplaySpec {
            selector: Selector::Id(1),
            live: false,
            since_unix_ns,
            until_unix_ns: None,
            filter: String::new(),
            raw_records: true,
            microseconds: false,
            segment_handoff: true,
        }
    }

    /// A spool of `closed` segments of one record each (record i at i seconds), catalogued,
    /// and an open one with one more record.
    fn spool(closed: u64) -> (tempfile::TempDir, ReplaySource) {
        use pcap_core::savefile::{encode_record, FileHeader, Resolution};
        let tmp = tempfile::tempdir().unwrap();
        let mut catalog = Vec::new();
        for i in 0..=closed {
            let seq = i + 1;
            let ts = i as i64 * 1_000_000_000;
            let mut bytes = FileHeader {
                link_type: 1,
                snaplen: 262_144,
                resolution: Resolution::Nano,
            }
            .encode()
            .to_vec();
            encode_record(&mut bytes, Resolution::Nano, ts, 10, &[i as u8; 10]);
            let name = SegmentName {
                first_seq: seq,
                open: i == closed,
            };
            std::fs::write(tmp.path().join(name.file_name()), &bytes).unwrap();
            if !name.open {
                catalog.push(SegmentMeta {
                    first_seq: seq,
                    packets: 1,
                    first_ts_ns: ts,
                    last_ts_ns: ts,
                    bytes: bytes.len() as u64,
                });
            }
        }
        let src = ReplaySource {
            id: 1,
            link_type: 1,
            snaplen: 262_144,
            dir: tmp.path().to_owned(),
            catalog,
            upto_seq: u64::MAX,
            filter: None,
            live: None,
        };
        (tmp, src)
    }

    /// Fetches the files as a client does: the first sequence numbers of each message,
    /// checking that as many descriptors came, each a readable savefile.
    fn fetch(offer: &Offer, token: &[u8]) -> std::io::Result<Vec<Vec<u64>>> {
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&offer.socket)?;
        let mut conn = StdStream::connect_addr(&addr)?;
        conn.write_all(token)?;
        let mut messages = Vec::new();
        loop {
            let mut buf = vec![0u8; 4096];
            let mut space = nix::cmsg_space!([RawFd; 253]);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<UnixAddr>(
                conn.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )?;
            let mut fds = Vec::new();
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    fds.extend(raw);
                }
            }
            let got = msg.bytes;
            if got == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
            assert_eq!(got, 4 + len, "one whole message per read");
            let files = api::SegmentFiles::decode(&buf[4..got]).unwrap();
            assert_eq!(files.first_sequence.len(), fds.len());
            for fd in fds {
                let bytes = std::fs::read(format!("/proc/self/fd/{fd}")).unwrap();
                let magic = u32::from_le_bytes(bytes[..4].try_into().unwrap());
                assert_eq!(magic, pcap_core::savefile::MAGIC_NSEC);
                nix::unistd::close(fd).unwrap();
            }
            messages.push(files.first_sequence);
            if files.last {
                return Ok(messages);
            }
            conn.write_all(&[1])?;
        }
    }

    /// Serves a replay of `src` for `uid`, fetched by this process with `token` (the right
    /// one when `None`): what the client got, and how the stream ended.
    async fn exchange(
        src: ReplaySource,
        spec: &ReplaySpec,
        uid: u32,
        token: Option<Vec<u8>>,
    ) -> (std::io::Result<Vec<Vec<u64>>>, Option<Error>) {
        let socket = Socket::bind(src.upto_seq).unwrap();
        let mut items = replay(socket, src, spec, uid, ());
        assert!(matches!(items.recv().await, Some(Ok(Item::Header(_)))));
        let Some(Ok(Item::Handoff(offer))) = items.recv().await else {
            panic!("the offer follows the header");
        };
        assert_eq!(offer.token.len(), SECRET_LEN);
        let token = token.unwrap_or_else(|| offer.token.clone());
        let fetched = tokio::task::spawn_blocking(move || fetch(&offer, &token))
            .await
            .unwrap();
        let end = match items.recv().await {
            None => None,
            Some(Err(e)) => Some(e),
            Some(Ok(other)) => panic!("nothing but an error may follow: {other:?}"),
        };
        (fetched, end)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_files_come_a_message_at_a_time_in_order_and_the_stream_ends_clean() {
        let (_tmp, src) = spool(70);
        let (fetched, end) = exchange(src, &spec(None), nix::unistd::getuid().as_raw(), None).await;
        let messages = fetched.unwrap();
        let sizes: Vec<usize> = messages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [32, 32, 7], "70 closed segments and the open one");
        let seqs: Vec<u64> = messages.concat();
        assert_eq!(seqs, (1..=71).collect::<Vec<_>>());
        assert!(end.is_none(), "{end:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn segments_out_of_the_time_bounds_and_past_the_end_are_not_handed_over() {
        let (_tmp, mut src) = spool(10);
        // Records at 0..=10 s, numbered 1..=11; from 6 s on, up to record 9.
        src.upto_seq = 9;
        let since = Some(6_000_000_000);
        let (fetched, _) = exchange(src, &spec(since), nix::unistd::getuid().as_raw(), None).await;
        assert_eq!(fetched.unwrap().concat(), [7, 8, 9]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_user_or_a_wrong_token_gets_nothing() {
        let me = nix::unistd::getuid().as_raw();
        let (_tmp, src) = spool(3);
        let (fetched, end) = exchange(src, &spec(None), me.wrapping_add(1), None).await;
        assert!(
            fetched.is_err(),
            "the connection is closed without a message"
        );
        assert!(
            matches!(&end, Some(Error::PermissionDenied(m)) if m.contains("uid")),
            "{end:?}"
        );
        let (_tmp, src) = spool(3);
        let (fetched, end) = exchange(src, &spec(None), me, Some(vec![0; SECRET_LEN])).await;
        assert!(fetched.is_err());
        assert!(
            matches!(&end, Some(Error::PermissionDenied(m)) if m.contains("token")),
            "{end:?}"
        );
    }

    /// Something held for the replay, and a way to tell it was let go.
    fn held() -> (std::sync::Arc<()>, std::sync::Weak<()>) {
        let hold = std::sync::Arc::new(());
        let weak = std::sync::Arc::downgrade(&hold);
        (hold, weak)
    }

    /// Whether what was held is let go within 10 s (the replay's task ends just after the
    /// stream does).
    async fn let_go(weak: &std::sync::Weak<()>) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while weak.upgrade().is_some() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_gone_in_the_middle_ends_the_handoff_and_lets_go() {
        let (_tmp, src) = spool(70);
        let (hold, weak) = held();
        let socket = Socket::bind(src.upto_seq).unwrap();
        let me = nix::unistd::getuid().as_raw();
        let mut items = replay(socket, src, &spec(None), me, hold);
        assert!(matches!(items.recv().await, Some(Ok(Item::Header(_)))));
        let Some(Ok(Item::Handoff(offer))) = items.recv().await else {
            panic!("the offer follows the header");
        };
        // The first of three messages, then the connection closed without asking for more.
        let first = tokio::task::spawn_blocking(move || {
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&offer.socket)?;
            let mut conn = StdStream::connect_addr(&addr)?;
            conn.write_all(&offer.token)?;
            let mut buf = vec![0u8; 4096];
            let mut space = nix::cmsg_space!([RawFd; 253]);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<UnixAddr>(
                conn.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )?;
            let mut fds = 0;
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    fds += raw.len();
                    raw.into_iter()
                        .for_each(|fd| nix::unistd::close(fd).unwrap());
                }
            }
            std::io::Result::Ok(fds)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(first, FILES_PER_MESSAGE);
        let end = tokio::time::timeout(Duration::from_secs(10), items.recv())
            .await
            .expect("the stream ends once the client is gone");
        assert!(end.is_none(), "{end:?}");
        assert!(let_go(&weak).await, "the replay's hold is let go");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_never_comes_is_given_up_on() {
        let (_tmp, src) = spool(3);
        let (hold, weak) = held();
        let socket = Socket::bind(src.upto_seq).unwrap();
        let me = nix::unistd::getuid().as_raw();
        let within = Duration::from_millis(200);
        let mut items = replay_within(socket, src, &spec(None), me, hold, within);
        assert!(matches!(items.recv().await, Some(Ok(Item::Header(_)))));
        let Some(Ok(Item::Handoff(offer))) = items.recv().await else {
            panic!("the offer follows the header");
        };
        let end = tokio::time::timeout(Duration::from_secs(10), items.recv())
            .await
            .expect("the stream ends");
        assert!(
            matches!(&end, Some(Err(Error::Unavailable(m)))
                if m == "the client did not fetch the segment files within 200ms"),
            "{end:?}"
        );
        assert!(let_go(&weak).await, "the replay's hold is let go");
        // The socket is gone with it.
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&offer.socket).unwrap();
        let refused = StdStream::connect_addr(&addr).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_gone_before_the_client_connects_takes_the_socket_with_it() {
        let (_tmp, src) = spool(3);
        let (hold, weak) = held();
        let socket = Socket::bind(src.upto_seq).unwrap();
        let me = nix::unistd::getuid().as_raw();
        let mut items = replay(socket, src, &spec(None), me, hold);
        assert!(matches!(items.recv().await, Some(Ok(Item::Header(_)))));
        let Some(Ok(Item::Handoff(offer))) = items.recv().await else {
            panic!("the offer follows the header");
        };
        drop(items);
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&offer.socket).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match StdStream::connect_addr(&addr) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
                _ if std::time::Instant::now() > deadline => panic!("the socket is still bound"),
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
        assert!(let_go(&weak).await, "the replay's hold is let go");
    }
}
