//! The rewriter every UNIX-socket connection to pcapd goes through before the HTTP/2
//! server (`pcapd::listen::authority`): it reads the client's frames and decodes and
//! re-encodes header blocks with HPACK. Its input is whatever a local client writes.

use std::cell::RefCell;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// The HTTP/2 client preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long one input may take; longer means the rewriter stalled.
const STALL: Duration = Duration::from_secs(10);
/// Largest frame the server behind the rewriter accepts.
const MAX_FRAME: usize = 16_384;
/// The length in the frame head the rewriter hands the server to make it end the
/// connection (GOAWAY FRAME_SIZE_ERROR) when a client breaks the framing or the limits.
const REFUSAL: usize = 0xff_ffff;

thread_local! {
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// Writes the input into a connection wrapped as pcapd wraps accepted ones, closes the
/// client's side, and reads what the server would get until the rewriter ends. It must
/// end (not stall), and bytes that are not HTTP/2 must pass through unchanged. HTTP/2 is
/// forwarded as whole frames of at most 16 KiB, ending, if the client was refused, with
/// the head of a frame no server accepts.
pub fn uds_frames(data: &[u8]) {
    RUNTIME.with(|cell| {
        let mut cell = cell.borrow_mut();
        let rt = cell.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
        });
        let out = rt.block_on(rewrite(data.to_vec()));
        if data.len() < PREFACE.len() {
            assert!(out.is_empty(), "a short preface was forwarded");
        } else if &data[..PREFACE.len()] != PREFACE {
            assert_eq!(out, data, "bytes that are not HTTP/2 were changed");
        } else {
            assert_eq!(&out[..PREFACE.len()], PREFACE);
            check_frames(&out[PREFACE.len()..]);
        }
    });
}

async fn rewrite(data: Vec<u8>) -> Vec<u8> {
    let (server, client) = tokio::net::UnixStream::pair().expect("socket pair");
    let mut conn = pcapd::listen::authority::wrap(server);
    let (_client_read, mut client_write) = client.into_split();
    // The rewriter stops reading at the first error, so the writer may never finish:
    // it runs on its own and is dropped at the end.
    let writer = tokio::spawn(async move {
        let _ = client_write.write_all(&data).await;
        let _ = client_write.shutdown().await;
    });
    let mut out = Vec::new();
    let read = tokio::time::timeout(STALL, conn.read_to_end(&mut out)).await;
    writer.abort();
    match read {
        Ok(_) => out,
        Err(_) => panic!(
            "the rewriter neither ended nor forwarded more after {STALL:?} ({} bytes out)",
            out.len()
        ),
    }
}

/// Every frame the server gets is whole and within its size; a refusal comes last.
fn check_frames(mut out: &[u8]) {
    while !out.is_empty() {
        assert!(out.len() >= 9, "a partial frame head was forwarded");
        let len = u32::from_be_bytes([0, out[0], out[1], out[2]]) as usize;
        if len == REFUSAL {
            assert_eq!(out.len(), 9, "bytes were forwarded after a refusal");
            return;
        }
        assert!(len <= MAX_FRAME, "a frame of {len} bytes was forwarded");
        assert!(out.len() >= 9 + len, "a partial frame was forwarded");
        out = &out[9 + len..];
    }
}
