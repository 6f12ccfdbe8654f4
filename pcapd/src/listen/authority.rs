//! Lets every gRPC client use the UNIX socket. Several gRPC implementations (grpcio 1.57
//! and later, grpc-java, grpc-swift) send the socket's path as the HTTP/2 `:authority` of
//! calls over a UNIX socket, which is not a valid authority, and the HTTP/2 layer under
//! tonic refuses such requests with PROTOCOL_ERROR. On UNIX connections only, the header
//! blocks a client sends are decoded and encoded again with an invalid `:authority`
//! replaced by `localhost` (what gRPC's own convention for UNIX sockets is). Every other
//! frame, and all that pcapd sends back, passes through untouched.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use loona_hpack::{Decoder, Encoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::OwnedSemaphorePermit;
use tonic::transport::server::{Connected, UdsConnectInfo};

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest frame payload the server behind accepts: SETTINGS_MAX_FRAME_SIZE's floor, which
/// hyper advertises and pcapd does not raise.
const MAX_FRAME: usize = 16_384;
/// Largest header block (HPACK-encoded, all its frames together) accepted from a client:
/// the 16 KiB that hyper's HTTP/2 server allows for a header list.
pub const MAX_BLOCK: usize = 16 << 10;
/// Largest decoded header list (RFC 9113 size: name + value + 32 per field). A 16 KiB block
/// of one-byte references to the dynamic table would otherwise decode to megabytes. h2
/// answers lists over 16 KiB with a stream error and ends the connection beyond four times
/// that; the rewriter forwards what h2 would still judge itself and refuses the rest.
const MAX_LIST: usize = 4 * MAX_BLOCK;

/// A UNIX connection whose client-to-server direction goes through the rewriter.
pub struct UdsConn {
    read: DuplexStream,
    write: OwnedWriteHalf,
    info: UdsConnectInfo,
    /// The connection's place under `max_local_connections`, shared with the rewriter
    /// task: it is given back once both the server and the rewriter are done with the
    /// socket.
    _slot: Option<Arc<OwnedSemaphorePermit>>,
}

/// Wraps an accepted connection; the peer credentials are taken before it is split.
pub fn wrap(stream: UnixStream) -> UdsConn {
    wrap_holding(stream, None)
}

/// Wraps an accepted connection that holds `slot` for as long as its socket is open.
pub(crate) fn wrap_holding(stream: UnixStream, slot: Option<OwnedSemaphorePermit>) -> UdsConn {
    let slot = slot.map(Arc::new);
    let info = stream.connect_info();
    let (rd, write) = stream.into_split();
    let (read, rewritten) = tokio::io::duplex(64 << 10);
    let task_slot = slot.clone();
    tokio::spawn(async move {
        if let Err(e) = rewrite(rd, rewritten).await {
            tracing::debug!(error = %e, "local client connection ended");
        }
        drop(task_slot);
    });
    UdsConn {
        read,
        write,
        info,
        _slot: slot,
    }
}

/// Copies the client's bytes to `out`, re-encoding header blocks. A client that breaks the
/// framing or the limits gets a connection error from the HTTP/2 server: see [`refuse`].
async fn rewrite(mut rd: OwnedReadHalf, mut out: DuplexStream) -> std::io::Result<()> {
    let mut preface = [0u8; 24];
    rd.read_exact(&mut preface).await?;
    out.write_all(&preface).await?;
    if &preface != PREFACE {
        // Not HTTP/2: let the server say so.
        return tokio::io::copy(&mut rd, &mut out).await.map(drop);
    }
    let mut blocks = HeaderBlocks::default();
    loop {
        let mut head = [0u8; 9];
        match rd.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return out.shutdown().await;
            }
            Err(e) => return Err(e),
        }
        let frame = Frame {
            kind: head[3],
            flags: head[4],
            stream: head[5..9].try_into().expect("4 bytes"),
        };
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        if len > MAX_FRAME {
            return refuse(
                out,
                frame,
                &format!("a frame of {len} bytes (at most {MAX_FRAME})"),
            )
            .await;
        }
        let mut payload = vec![0u8; len];
        rd.read_exact(&mut payload).await?;
        match blocks.take(frame, payload) {
            Ok(Taken::PassThrough(payload)) => {
                out.write_all(&head).await?;
                out.write_all(&payload).await?;
            }
            Ok(Taken::Pending) => {}
            Ok(Taken::Rewritten(bytes)) => out.write_all(&bytes).await?,
            Err(e) => return refuse(out, frame, &e.to_string()).await,
        }
    }
}

/// Ends a connection whose client sent what the rewriter does not forward (a header block
/// over [`MAX_BLOCK`], a frame over [`MAX_FRAME`], broken padding or HPACK).
///
/// h2 answers such input with a GOAWAY frame (FRAME_SIZE_ERROR, COMPRESSION_ERROR or
/// ENHANCE_YOUR_CALM) and closes, so that the client reports a connection error rather than
/// a bare reset. The rewriter cannot write that GOAWAY itself: the server's frames share the
/// socket's write side, and one written in between could split one of them. So it hands the
/// server the head of a frame longer than any HTTP/2 frame may be (2^24 - 1 bytes, above
/// the 16 KiB pcapd's server accepts), which h2 refuses the moment it reads the head with
/// GOAWAY(FRAME_SIZE_ERROR), and forwards nothing more.
async fn refuse(mut out: DuplexStream, frame: Frame, what: &str) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(9);
    push_frame_head(&mut head, 0xff_ffff, frame.kind, 0, frame.stream);
    out.write_all(&head).await?;
    out.shutdown().await?;
    Err(invalid(&format!(
        "refused {what}: the client broke HTTP/2 framing or pcapd's limits, the connection \
         is closed with GOAWAY"
    )))
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: [u8; 4],
}

enum Taken {
    PassThrough(Vec<u8>),
    Pending,
    Rewritten(Vec<u8>),
}

/// The HPACK state of one connection and the header block being gathered.
#[derive(Default)]
struct HeaderBlocks {
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
    /// First frame of a block still waiting for END_HEADERS, its priority, and the block.
    open: Option<(Frame, Option<[u8; 5]>, Vec<u8>)>,
}

impl HeaderBlocks {
    fn take(&mut self, frame: Frame, payload: Vec<u8>) -> std::io::Result<Taken> {
        if let Some((first, _, _)) = &self.open {
            if frame.kind != CONTINUATION || frame.stream != first.stream {
                return Err(invalid(
                    "a frame other than the CONTINUATION of the open header block",
                ));
            }
        }
        match frame.kind {
            HEADERS => {
                let mut body = &payload[..];
                if frame.flags & PADDED != 0 {
                    let pad = *body.first().ok_or_else(|| invalid("empty padded frame"))? as usize;
                    if pad + 1 > body.len() {
                        return Err(invalid("padding longer than the frame"));
                    }
                    body = &body[1..body.len() - pad];
                }
                let priority = if frame.flags & PRIORITY != 0 {
                    if body.len() < 5 {
                        return Err(invalid("short priority"));
                    }
                    let p: [u8; 5] = body[..5].try_into().expect("5 bytes");
                    body = &body[5..];
                    Some(p)
                } else {
                    None
                };
                self.open = Some((frame, priority, body.to_vec()));
            }
            CONTINUATION if self.open.is_some() => {
                let (_, _, block) = self.open.as_mut().expect("checked above");
                block.extend_from_slice(&payload);
            }
            _ => return Ok(Taken::PassThrough(payload)),
        }
        let (_, _, block) = self.open.as_ref().expect("set above");
        if block.len() > MAX_BLOCK {
            return Err(invalid(&format!(
                "a header block of more than {MAX_BLOCK} bytes"
            )));
        }
        if frame.flags & END_HEADERS == 0 {
            return Ok(Taken::Pending);
        }
        let (first, priority, block) = self.open.take().expect("set above");
        Ok(Taken::Rewritten(self.reencode(first, priority, &block)?))
    }

    /// Decodes a whole block and writes it again as HEADERS (+ CONTINUATION) frames.
    fn reencode(
        &mut self,
        first: Frame,
        priority: Option<[u8; 5]>,
        block: &[u8],
    ) -> std::io::Result<Vec<u8>> {
        let mut headers = Vec::new();
        let mut size = 0usize;
        self.decoder
            .decode_with_cb(block, |name, value| {
                size = size.saturating_add(name.len() + value.len() + 32);
                if size <= MAX_LIST {
                    headers.push((name.into_owned(), value.into_owned()));
                }
            })
            .map_err(|e| invalid(&format!("a header block HPACK cannot decode ({e:?})")))?;
        if size > MAX_LIST {
            return Err(invalid(&format!(
                "a header list of {size} bytes once decoded (at most {MAX_LIST})"
            )));
        }
        for (name, value) in headers.iter_mut() {
            if name == b":authority" && http::uri::Authority::try_from(&value[..]).is_err() {
                *value = b"localhost".to_vec();
            }
        }
        let encoded = self
            .encoder
            .encode(headers.iter().map(|(n, v)| (&n[..], &v[..])));
        let mut out = Vec::with_capacity(encoded.len() + 32);
        let room = MAX_FRAME - priority.map_or(0, |_| 5);
        let (head, rest) = encoded.split_at(encoded.len().min(room));
        let mut flags = first.flags & END_STREAM;
        if priority.is_some() {
            flags |= PRIORITY;
        }
        if rest.is_empty() {
            flags |= END_HEADERS;
        }
        let len = head.len() + priority.map_or(0, |_| 5);
        push_frame_head(&mut out, len, HEADERS, flags, first.stream);
        if let Some(p) = priority {
            out.extend_from_slice(&p);
        }
        out.extend_from_slice(head);
        let mut chunks = rest.chunks(MAX_FRAME).peekable();
        while let Some(chunk) = chunks.next() {
            let flags = if chunks.peek().is_none() {
                END_HEADERS
            } else {
                0
            };
            push_frame_head(&mut out, chunk.len(), CONTINUATION, flags, first.stream);
            out.extend_from_slice(chunk);
        }
        Ok(out)
    }
}

fn push_frame_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: [u8; 4]) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream);
}

// === impl UdsConn ===

impl Connected for UdsConn {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> UdsConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for UdsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for UdsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.write).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.write).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.write.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_frame_head(&mut out, payload.len(), kind, flags, stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// What the server gets when a client writes `wire` and closes its side.
    async fn through_rewriter(wire: &[u8]) -> Vec<u8> {
        let (server, client) = tokio::net::UnixStream::pair().unwrap();
        let mut conn = wrap(server);
        let (_client_r, mut client_w) = client.into_split();
        client_w.write_all(wire).await.unwrap();
        client_w.shutdown().await.unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).await.unwrap();
        got
    }

    /// Splits a byte stream into (type, flags, payload) frames.
    fn frames(mut b: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
        let mut out = Vec::new();
        while b.len() >= 9 {
            let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
            out.push((b[3], b[4], b[9..9 + len].to_vec()));
            b = &b[9 + len..];
        }
        out
    }

    #[tokio::test]
    async fn a_socket_path_authority_becomes_localhost_and_the_rest_is_kept() {
        let mut client_enc = Encoder::new();
        let request = |path: &[u8]| -> Vec<(Vec<u8>, Vec<u8>)> {
            vec![
                (b":method".to_vec(), b"POST".to_vec()),
                (b":scheme".to_vec(), b"http".to_vec()),
                (b":path".to_vec(), path.to_vec()),
                (b":authority".to_vec(), b"tmp%2Fpcapd.sock".to_vec()),
                (b"te".to_vec(), b"trailers".to_vec()),
            ]
        };
        let first = request(b"/pcap.v1.Pcapd/Version");
        let second = request(b"/pcap.v1.Pcapd/List");
        let block1 = client_enc.encode(first.iter().map(|(n, v)| (&n[..], &v[..])));
        let block2 = client_enc.encode(second.iter().map(|(n, v)| (&n[..], &v[..])));

        let mut wire = PREFACE.to_vec();
        wire.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        wire.extend(frame(HEADERS, END_HEADERS, 1, &block1));
        wire.extend(frame(0x0, END_STREAM, 1, b"\0\0\0\0\0")); // DATA
                                                               // The second block split across HEADERS and CONTINUATION, with padding.
        let (a, b) = block2.split_at(block2.len() / 2);
        let mut padded = vec![3u8];
        padded.extend_from_slice(a);
        padded.extend_from_slice(&[0, 0, 0]);
        wire.extend(frame(HEADERS, PADDED | END_STREAM, 3, &padded));
        wire.extend(frame(CONTINUATION, END_HEADERS, 3, b));

        let got = through_rewriter(&wire).await;

        assert_eq!(&got[..24], PREFACE);
        let fs = frames(&got[24..]);
        let kinds: Vec<u8> = fs.iter().map(|f| f.0).collect();
        assert_eq!(kinds, vec![0x4, HEADERS, 0x0, HEADERS]);
        assert_eq!(fs[2].2, b"\0\0\0\0\0", "data passes through");
        assert_eq!(
            fs[3].1 & (END_STREAM | END_HEADERS),
            END_STREAM | END_HEADERS
        );
        let mut server_dec = Decoder::new();
        for (i, expected_path) in [
            (1, &b"/pcap.v1.Pcapd/Version"[..]),
            (3, &b"/pcap.v1.Pcapd/List"[..]),
        ] {
            let headers = server_dec.decode(&fs[i].2).unwrap();
            let get = |n: &[u8]| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            assert_eq!(get(b":authority").unwrap(), b"localhost");
            assert_eq!(get(b":path").unwrap(), expected_path);
            assert_eq!(get(b"te").unwrap(), b"trailers");
        }
    }

    /// A literal field without indexing, new name, its value `len` bytes of 'x'.
    fn raw_literal(name: &[u8], len: usize) -> Vec<u8> {
        let mut b = vec![0x00];
        b.extend(loona_hpack::encoder::encode_integer(name.len(), 7));
        b.extend_from_slice(name);
        b.extend(loona_hpack::encoder::encode_integer(len, 7));
        b.extend(std::iter::repeat_n(b'x', len));
        b
    }

    /// A block of exactly `size` bytes: `:authority` and one big field.
    fn block_of(size: usize) -> Vec<u8> {
        let mut head = Vec::new();
        head.extend(raw_literal(b":authority", 0));
        let mut len = size - head.len() - raw_literal(b"x-big", 0).len();
        // The value's length takes more bytes once it is large.
        while head.len() + raw_literal(b"x-big", len).len() > size {
            len -= 1;
        }
        let block = [head, raw_literal(b"x-big", len)].concat();
        assert_eq!(block.len(), size, "cannot make a block of {size} bytes");
        block
    }

    fn headers_frame(flags: u8) -> Frame {
        Frame {
            kind: HEADERS,
            flags,
            stream: 5u32.to_be_bytes(),
        }
    }

    #[test]
    fn valid_authorities_are_left_alone_and_big_blocks_are_split() {
        let mut blocks = HeaderBlocks::default();
        // 20,000 'a's, Huffman-coded in 12,500 bytes (5 bits each): re-encoded without
        // Huffman coding they no longer fit one frame.
        let mut block = raw_literal(b":authority", 0);
        block.truncate(1 + 1 + b":authority".len());
        block.extend(loona_hpack::encoder::encode_integer(14, 7));
        block.extend_from_slice(b"localhost:2020");
        block.extend([0x00, 5]);
        block.extend_from_slice(b"x-big");
        let mut value = loona_hpack::encoder::encode_integer(12_500, 7);
        value[0] |= 0x80; // Huffman
        block.extend(value);
        for _ in 0..2500 {
            block.extend([0x18, 0xc6, 0x31, 0x8c, 0x63]);
        }
        assert!(block.len() <= MAX_BLOCK);
        let Taken::Rewritten(out) = blocks.take(headers_frame(END_HEADERS), block).unwrap() else {
            panic!("rewritten")
        };
        let fs = frames(&out);
        assert!(fs.len() >= 2, "split into HEADERS and CONTINUATION");
        assert!(fs.iter().all(|f| f.2.len() <= MAX_FRAME));
        assert_eq!(fs.last().unwrap().1 & END_HEADERS, END_HEADERS);
        let whole: Vec<u8> = fs.iter().flat_map(|f| f.2.clone()).collect();
        let decoded = Decoder::new().decode(&whole).unwrap();
        assert_eq!(decoded[0].1, b"localhost:2020");
        assert_eq!(decoded[1].1, vec![b'a'; 20_000]);
    }

    #[test]
    fn header_blocks_of_16_kib_pass_and_larger_are_refused() {
        let mut blocks = HeaderBlocks::default();
        let whole = block_of(MAX_BLOCK);
        let taken = blocks.take(headers_frame(END_HEADERS), whole).unwrap();
        assert!(matches!(taken, Taken::Rewritten(_)));

        // 16 KiB + 1 over HEADERS and CONTINUATION: refused when the block grows past it.
        let mut blocks = HeaderBlocks::default();
        let over = block_of(MAX_BLOCK + 1);
        let (a, b) = over.split_at(10_000);
        let taken = blocks.take(headers_frame(0), a.to_vec()).unwrap();
        assert!(matches!(taken, Taken::Pending));
        let cont = Frame {
            kind: CONTINUATION,
            flags: END_HEADERS,
            stream: 5u32.to_be_bytes(),
        };
        let err = blocks.take(cont, b.to_vec()).err().expect("refused");
        assert!(err.to_string().contains("more than 16384 bytes"), "{err}");
    }

    #[test]
    fn blocks_that_decode_to_huge_lists_are_refused() {
        // A field put in the dynamic table once, then referenced with one byte each: a
        // small block that would decode to megabytes.
        let mut block = vec![0x40];
        block.extend(loona_hpack::encoder::encode_integer(5, 7));
        block.extend_from_slice(b"x-big");
        block.extend(loona_hpack::encoder::encode_integer(4000, 7));
        block.extend(std::iter::repeat_n(b'x', 4000));
        block.extend(std::iter::repeat_n(0x80 | 62, 10_000));
        assert!(block.len() <= MAX_BLOCK);
        let err = HeaderBlocks::default()
            .take(headers_frame(END_HEADERS), block)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("once decoded"), "{err}");
    }

    #[test]
    fn frames_inside_an_open_block_must_be_its_continuation() {
        let mut blocks = HeaderBlocks::default();
        let block = block_of(100);
        blocks.take(headers_frame(0), block).unwrap();
        let data = Frame {
            kind: 0x0,
            flags: 0,
            stream: 5u32.to_be_bytes(),
        };
        assert!(blocks.take(data, vec![0; 4]).is_err());
    }

    #[tokio::test]
    async fn a_refused_client_makes_the_server_see_an_impossible_frame_and_the_end() {
        let mut wire = PREFACE.to_vec();
        wire.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        let over = block_of(MAX_BLOCK + 1);
        let (a, b) = over.split_at(MAX_FRAME);
        wire.extend(frame(HEADERS, 0, 1, a));
        wire.extend(frame(CONTINUATION, END_HEADERS, 1, b));
        // Never forwarded: the rewriter stops at the refusal.
        wire.extend(frame(0x6, 0, 0, &[0; 8])); // PING

        let got = through_rewriter(&wire).await;

        let mut expected = PREFACE.to_vec();
        expected.extend(frame(0x4, 0, 0, &[]));
        expected.extend([0xff, 0xff, 0xff, CONTINUATION, 0, 0, 0, 0, 1]);
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn frames_longer_than_16_kib_are_refused_the_same_way() {
        let mut wire = PREFACE.to_vec();
        wire.extend(frame(0x0, 0, 1, &vec![0; MAX_FRAME + 1])); // DATA
        let got = through_rewriter(&wire).await;
        assert_eq!(&got[24..], [0xff, 0xff, 0xff, 0x0, 0, 0, 0, 0, 1]);
    }
}
