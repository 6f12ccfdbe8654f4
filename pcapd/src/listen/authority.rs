//! Lets every gRPC client use the UNIX socket. Several gRPC implementations (grpcio 1.57
//! and later, grpc-java, grpc-swift) send the socket's path as the HTTP/2 `:authority` of
//! calls over a UNIX socket, which is not a valid authority, and the HTTP/2 layer under
//! tonic refuses such requests with PROTOCOL_ERROR. On UNIX connections only, the header
//! blocks a client sends are decoded and encoded again with an invalid `:authority`
//! replaced by `localhost` (what gRPC's own convention for UNIX sockets is). Every other
//! frame, and all that pcapd sends back, passes through untouched.

use std::pin::Pin;
use std::task::{Context, Poll};

use loona_hpack::{Decoder, Encoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tonic::transport::server::{Connected, UdsConnectInfo};

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest frame payload every HTTP/2 peer accepts (SETTINGS_MAX_FRAME_SIZE's floor).
const MAX_FRAME: usize = 16_384;
/// Largest header block accepted from a client (h2's own default limit is 16 KiB).
const MAX_BLOCK: usize = 1 << 20;

/// A UNIX connection whose client-to-server direction goes through the rewriter.
pub struct UdsConn {
    read: DuplexStream,
    write: OwnedWriteHalf,
    info: UdsConnectInfo,
}

/// Wraps an accepted connection; the peer credentials are taken before it is split.
pub fn wrap(stream: UnixStream) -> UdsConn {
    let info = stream.connect_info();
    let (rd, write) = stream.into_split();
    let (read, rewritten) = tokio::io::duplex(64 << 10);
    tokio::spawn(async move {
        if let Err(e) = rewrite(rd, rewritten).await {
            tracing::debug!(error = %e, "local client connection ended");
        }
    });
    UdsConn { read, write, info }
}

/// Copies the client's bytes to `out`, re-encoding header blocks.
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
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        if len > MAX_BLOCK {
            return Err(invalid("frame larger than any pcapd accepts"));
        }
        let mut payload = vec![0u8; len];
        rd.read_exact(&mut payload).await?;
        let frame = Frame {
            kind: head[3],
            flags: head[4],
            stream: head[5..9].try_into().expect("4 bytes"),
        };
        match blocks.take(frame, payload)? {
            Taken::PassThrough(payload) => {
                out.write_all(&head).await?;
                out.write_all(&payload).await?;
            }
            Taken::Pending => {}
            Taken::Rewritten(bytes) => out.write_all(&bytes).await?,
        }
    }
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
                let (_, _, block) = self.open.as_mut().expect("checked");
                block.extend_from_slice(&payload);
                if block.len() > MAX_BLOCK {
                    return Err(invalid("header block too large"));
                }
            }
            _ => return Ok(Taken::PassThrough(payload)),
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
        let mut headers = self
            .decoder
            .decode(block)
            .map_err(|e| invalid(&format!("header block: {e:?}")))?;
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

        let (server, client) = tokio::net::UnixStream::pair().unwrap();
        let mut conn = wrap(server);
        let (_, mut client_w) = client.into_split();
        client_w.write_all(&wire).await.unwrap();
        client_w.shutdown().await.unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).await.unwrap();

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

    #[test]
    fn valid_authorities_are_left_alone_and_big_blocks_are_split() {
        let mut blocks = HeaderBlocks::default();
        let mut enc = Encoder::new();
        let big = vec![b'x'; 40_000];
        let headers: Vec<(&[u8], &[u8])> =
            vec![(b":authority", b"localhost:2020"), (b"x-big", &big)];
        let block = enc.encode(headers.iter().copied());
        let f = Frame {
            kind: HEADERS,
            flags: END_HEADERS,
            stream: 5u32.to_be_bytes(),
        };
        let Taken::Rewritten(out) = blocks.take(f, block).unwrap() else {
            panic!("rewritten")
        };
        let fs = frames(&out);
        assert!(fs.len() >= 3, "split into HEADERS and CONTINUATIONs");
        assert!(fs.iter().all(|f| f.2.len() <= MAX_FRAME));
        assert_eq!(fs.last().unwrap().1 & END_HEADERS, END_HEADERS);
        let whole: Vec<u8> = fs.iter().flat_map(|f| f.2.clone()).collect();
        let decoded = Decoder::new().decode(&whole).unwrap();
        assert_eq!(decoded[0].1, b"localhost:2020");
        assert_eq!(decoded[1].1.len(), 40_000);
    }
}
