//! Reading a local capture's segment files, which pcapd hands over instead of streaming
//! their records (`SegmentHandoff` in the API): each record then crosses one copy into
//! this program instead of three, which is what makes `pcap replay ID | ...` as fast as
//! reading the files with tcpdump. The records are selected here as the daemon would
//! select them (its spool up to where it ended when the replay began, within the time
//! bounds), and come out in the same batches as a streamed replay's.
//!
//! Set `PCAP_NO_HANDOFF=1` to have the records streamed instead.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSliceMut, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context as _, Result};
use bytes::Bytes;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use pcap_core::api::v1 as api;
use pcap_core::domain::ReplaySpec;
use pcap_core::savefile::{self, Records, Resolution, Tail};
use pcap_core::segment;
use prost::Message;
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;

use crate::sources::Batch;

/// Bytes read from a segment at a time, and so the size of a batch.
const READ_BLOCK: usize = 1 << 20;

/// Descriptors one message may carry (the kernel's limit, SCM_MAX_FD).
const MAX_FILES: usize = 253;

/// How long pcapd may take to send the next files.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Largest message accepted: 10 bytes per file at most, and a little more.
const MAX_MESSAGE: usize = 16 * 1024;

/// Whether to ask for the segment files (unless `PCAP_NO_HANDOFF` is set to something
/// other than `0`).
pub fn wanted() -> bool {
    std::env::var_os("PCAP_NO_HANDOFF").is_none_or(|v| v.is_empty() || v == "0")
}

/// Which records of the handed-over segments a replay takes: the same rule as the
/// daemon's for a streamed replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The end of the spool when the replay began.
    upto_seq: u64,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
    /// Records go out with microsecond times.
    micro: bool,
}

impl Bounds {
    /// The records `spec` asks for ([`ReplaySpec::time_bounds`]), up to `upto_seq`.
    pub fn new(spec: &ReplaySpec, upto_seq: u64) -> Self {
        let (since_ns, until_ns) = spec.time_bounds();
        Bounds {
            upto_seq,
            since_ns,
            until_ns,
            micro: spec.microseconds,
        }
    }

    /// Whether record `seq` of time `ts_ns` is taken; `None`: neither it nor anything
    /// after it.
    fn takes(&self, seq: u64, ts_ns: i64) -> Option<bool> {
        if seq > self.upto_seq {
            return None;
        }
        // The spool may hold records slightly out of time order (several interfaces), so
        // a record past `until` does not end the replay.
        Some(self.since_ns.is_none_or(|s| ts_ns >= s) && self.until_ns.is_none_or(|u| ts_ns <= u))
    }
}

/// The connection the segment files come on, and those received and not yet read.
pub struct Handoff {
    conn: UnixStream,
    files: VecDeque<(u64, File)>,
    last: bool,
}

impl Handoff {
    /// Connects to the socket `offer` names, proves to be the caller, and receives the
    /// first files. Fails when the socket cannot be reached (this program runs in another
    /// network namespace than pcapd) or the daemon refused: the caller streams instead.
    pub fn connect(offer: &api::SegmentHandoff) -> io::Result<Handoff> {
        let addr = SocketAddr::from_abstract_name(offer.socket.as_bytes())?;
        let mut conn = UnixStream::connect_addr(&addr)?;
        // pcapd answers at once (it opens a few files); a daemon that does not is stuck.
        conn.set_read_timeout(Some(ANSWER_WITHIN))?;
        conn.write_all(&offer.token)?;
        let mut handoff = Handoff {
            conn,
            files: VecDeque::new(),
            last: false,
        };
        handoff.receive()?;
        Ok(handoff)
    }

    /// Reads every record `bounds` takes, file after file, in batches of about a
    /// megabyte, and hands them to `send`, which returns false when nobody wants more.
    pub fn read(mut self, bounds: Bounds, mut send: impl FnMut(Batch) -> bool) -> Result<()> {
        while let Some((first_seq, file)) = self.next_file()? {
            if first_seq > bounds.upto_seq {
                break;
            }
            match read_segment(file, first_seq, bounds, &mut send)? {
                ControlFlow::Continue(()) => {}
                ControlFlow::Break(()) => break,
            }
        }
        Ok(())
    }

    /// The next file, asking for more once those received are read; `None` at the end.
    fn next_file(&mut self) -> io::Result<Option<(u64, File)>> {
        loop {
            if let Some(f) = self.files.pop_front() {
                return Ok(Some(f));
            }
            if self.last {
                return Ok(None);
            }
            self.conn.write_all(&[1])?;
            self.receive()?;
        }
    }

    /// Receives one message and its descriptors.
    fn receive(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut space = nix::cmsg_space!([RawFd; MAX_FILES]);
        let (got, fds, truncated) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<UnixAddr>(
                self.conn.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )?;
            let mut fds = Vec::new();
            for cmsg in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(raw) = cmsg {
                    fds.extend(raw.into_iter().map(owned));
                }
            }
            (msg.bytes, fds, msg.flags.contains(MsgFlags::MSG_CTRUNC))
        };
        let refused = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "pcapd ended the handoff",
            ));
        }
        if truncated {
            return Err(refused("more files came than this program may open"));
        }
        // The rest of the frame, if the first read did not hold it all.
        let mut have = got;
        while have < 4 {
            have += read_some(&mut self.conn, &mut buf[have..4])?;
        }
        let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if 4 + len > buf.len() {
            return Err(refused("a handoff message too large to be one"));
        }
        while have < 4 + len {
            have += read_some(&mut self.conn, &mut buf[have..4 + len])?;
        }
        let files = api::SegmentFiles::decode(&buf[4..4 + len])
            .map_err(|e| refused(&format!("a handoff message that does not decode: {e}")))?;
        if files.first_sequence.len() != fds.len() {
            return Err(refused("a handoff message whose files do not match it"));
        }
        let seqs = files.first_sequence.into_iter();
        self.files.extend(seqs.zip(fds.into_iter().map(File::from)));
        self.last = files.last;
        Ok(())
    }
}

/// A descriptor just received, owned by nobody else.
#[allow(unsafe_code)]
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in this process for this message (SCM_RIGHTS);
    // nothing else refers to it, so this is its only owner and closes it once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn read_some(conn: &mut UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    match conn.read(buf)? {
        0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "pcapd ended the handoff in the middle of a message",
        )),
        n => Ok(n),
    }
}

/// Reads one segment whose first record is `first_seq`, sending what `bounds` takes.
/// Breaks when the records the replay wants end here, or nobody wants more.
fn read_segment(
    file: File,
    first_seq: u64,
    bounds: Bounds,
    send: &mut impl FnMut(Batch) -> bool,
) -> Result<ControlFlow<()>> {
    let name = Path::new("a handed-over segment");
    let mut seq = first_seq;
    let mut flow = ControlFlow::Continue(());
    let read = segment::for_each_chunk_of(file, name, READ_BLOCK, |header, chunk| {
        let (batch, next) = select(chunk, header.resolution, seq, bounds);
        if let Some(b) = batch {
            if !send(b) {
                flow = ControlFlow::Break(());
                return flow;
            }
        }
        match next {
            Some(n) => {
                seq = n;
                ControlFlow::Continue(())
            }
            None => {
                flow = ControlFlow::Break(());
                flow
            }
        }
    });
    match read {
        // A corrupt record ends the segment's records, as it does for the daemon.
        Ok((_, Tail::Clean | Tail::Partial | Tail::Corrupt)) => Ok(flow),
        Err(e) => Err(anyhow!(e)).context("cannot read a segment pcapd handed over"),
    }
}

/// The records of `chunk` (of unit `res`, the first numbered `seq`) that `bounds` takes,
/// as a batch in the unit the replay writes; and the next record's number, `None` when
/// the records wanted end here.
fn select(chunk: Bytes, res: Resolution, seq: u64, bounds: Bounds) -> (Option<Batch>, Option<u64>) {
    let mut n = seq;
    let mut ended = false;
    let mut count = 0u64;
    // Runs of taken records, as byte ranges of `chunk`.
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut records = Records::new(&chunk, u32::MAX);
    loop {
        let start = records.consumed();
        let Some((h, _)) = records.next() else {
            break;
        };
        match bounds.takes(n, h.ts_ns(res)) {
            None => {
                ended = true;
                break;
            }
            Some(true) => {
                count += 1;
                match kept.last_mut() {
                    Some((_, end)) if *end == start => *end = records.consumed(),
                    _ => kept.push((start, records.consumed())),
                }
            }
            Some(false) => {}
        }
        n += 1;
    }
    let next = (!ended).then_some(n);
    if count == 0 {
        return (None, next);
    }
    let mut own: Vec<u8> = match kept[..] {
        // Everything: the chunk itself, no copy.
        [(0, end)] if end == chunk.len() => chunk.into(),
        _ => {
            let mut v = Vec::with_capacity(kept.iter().map(|(a, b)| b - a).sum());
            for &(a, b) in &kept {
                v.extend_from_slice(&chunk[a..b]);
            }
            v
        }
    };
    let resolution = match (bounds.micro, res) {
        (true, Resolution::Nano) => {
            savefile::convert_records_in_place(&mut own, Resolution::Nano, Resolution::Micro);
            Resolution::Micro
        }
        _ => res,
    };
    let batch = Batch {
        records: Bytes::from(own),
        resolution,
        count: count as u32,
        arrived: Instant::now(),
    };
    (Some(batch), next)
}
