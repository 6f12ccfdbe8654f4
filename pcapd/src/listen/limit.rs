//! The cap on concurrent connections to the UNIX socket (`max_local_connections`). Every
//! open connection costs a file descriptor, a rewriter task and the HTTP/2 server's state;
//! any member of the socket's group could otherwise open them until the daemon runs out.
//!
//! A connection over the cap is accepted and refused at once rather than left in the
//! listen backlog, where a client hangs with no word of why. Closing it at once is not
//! much better: a gRPC client reports a closed connection as UNAVAILABLE or CANCELLED with
//! transport words ("connection closed"), and even an HTTP/2 GOAWAY's debug data does not
//! reach the caller through hyper and tonic. So for a short while ([`LINGER`]) the
//! connection is served by an HTTP/2 server of its own that answers every call with
//! RESOURCE_EXHAUSTED and a message naming the limit and the config key, which every gRPC
//! client shows as it is. At most [`ANSWERING`] refused connections are answered so at
//! once; past that, they get a bare GOAWAY (ENHANCE_YOUR_CALM, the same words as debug
//! data) and are closed.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;
use tokio_stream::{Stream, StreamExt};

use super::authority::{wrap, wrap_holding, UdsConn};

/// The config key that sets the cap, for messages.
const KEY: &str = "max_local_connections";
/// Refused connections answered with a gRPC status at once.
const ANSWERING: usize = 32;
/// How long a refused connection is answered before it is closed.
const LINGER: Duration = Duration::from_secs(2);
/// gRPC status code RESOURCE_EXHAUSTED.
const RESOURCE_EXHAUSTED: &str = "8";
/// RFC 9113 error code ENHANCE_YOUR_CALM: "excessive load".
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// Wraps the accepted UNIX connections of `incoming` for the server, refusing those that
/// would make more than `max` open at once.
pub fn limited<S>(incoming: S, max: usize) -> impl Stream<Item = io::Result<UdsConn>>
where
    S: Stream<Item = io::Result<UnixStream>>,
{
    let mut limit = LocalConnections::new(max);
    incoming.filter_map(move |accepted| match accepted {
        Ok(stream) => limit.admit(stream).map(Ok),
        Err(e) => Some(Err(e)),
    })
}

/// The open connections' slots and the refusals of the current burst.
struct LocalConnections {
    max: usize,
    slots: Arc<Semaphore>,
    answering: Arc<Semaphore>,
    /// Refused since the last connection let in; a warning is logged for the first.
    refused: u64,
    /// What a refused client is told.
    message: Arc<str>,
}

impl LocalConnections {
    fn new(max: usize) -> Self {
        LocalConnections {
            max,
            slots: Arc::new(Semaphore::new(max)),
            answering: Arc::new(Semaphore::new(ANSWERING)),
            refused: 0,
            message: refusal_message(max).into(),
        }
    }

    /// The wrapped connection, or `None` when it was refused.
    fn admit(&mut self, stream: UnixStream) -> Option<UdsConn> {
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => {
                if self.refused > 0 {
                    tracing::info!(
                        refused = self.refused,
                        "accepting local connections again ({KEY} = {})",
                        self.max
                    );
                    self.refused = 0;
                }
                Some(wrap_holding(stream, Some(slot)))
            }
            Err(_) => {
                if self.refused == 0 {
                    tracing::warn!(
                        limit = self.max,
                        "refusing local connections: {} are open, the most {KEY} allows; \
                         raise {KEY} in the config file if clients need more",
                        self.max
                    );
                }
                self.refused += 1;
                self.refuse(stream);
                None
            }
        }
    }

    /// Tells the client why, then closes the connection.
    fn refuse(&self, stream: UnixStream) {
        let Ok(answering) = self.answering.clone().try_acquire_owned() else {
            // A fresh socket's send buffer takes these few bytes whole.
            let _ = stream.try_write(&goaway(&self.message));
            return;
        };
        let message = self.message.clone();
        let answer = hyper::service::service_fn(move |_| {
            let response = Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", RESOURCE_EXHAUSTED)
                .header("grpc-message", &*message)
                .body(Empty::<Bytes>::new());
            async move { response }
        });
        tokio::spawn(async move {
            // Through the rewriter, so that clients sending the socket path as
            // `:authority` get the answer too.
            let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(wrap(stream)), answer);
            let _ = tokio::time::timeout(LINGER, served).await;
            drop(answering);
        });
    }
}

/// The words of a refusal; plain ASCII without `%`, so a valid `grpc-message` as it is.
fn refusal_message(max: usize) -> String {
    format!(
        "pcapd refused the connection: {max} local connections are open, the most its \
         {KEY} setting allows; try again when one closes, or raise {KEY} in pcapd's config \
         file"
    )
}

/// The server preface and a GOAWAY (last stream 0, ENHANCE_YOUR_CALM) carrying `message`.
fn goaway(message: &str) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0]; // SETTINGS, empty
    let len = 8 + message.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[0x7, 0, 0, 0, 0, 0]); // GOAWAY on stream 0
    out.extend_from_slice(&0u32.to_be_bytes()); // no stream was processed
    out.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;
    use tokio_stream::wrappers::UnixListenerStream;

    #[tokio::test]
    async fn connections_over_the_cap_are_refused_until_one_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let incoming = UnixListenerStream::new(UnixListener::bind(&path).unwrap());
        let mut conns = Box::pin(limited(incoming, 2));

        let mut clients = Vec::new();
        let mut open = Vec::new();
        for _ in 0..2 {
            clients.push(UnixStream::connect(&path).await.unwrap());
            open.push(conns.next().await.unwrap().unwrap());
        }
        // Further ones are refused inside the stream, which yields nothing for them: a
        // gRPC call over one fails with RESOURCE_EXHAUSTED, naming the limit.
        let next = tokio::spawn(async move {
            let c = conns.next().await.unwrap().unwrap();
            (conns, c)
        });
        for _ in 0..2 {
            let mut client = pcap_core::connect::connect_unix(&path).await.unwrap();
            let status = client
                .version(pcap_core::api::v1::VersionRequest {})
                .await
                .unwrap_err();
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
            assert_eq!(status.message(), refusal_message(2));
        }
        assert!(
            refusal_message(2).contains("2 local connections are open")
                && refusal_message(2).contains("max_local_connections")
        );
        assert!(!next.is_finished(), "a refused connection was handed on");

        // One client goes away: its slot comes back once the rewriter has seen it close and
        // the server side is dropped, so clients are refused until then, and let in after.
        drop(clients.remove(0));
        drop(open.remove(0));
        let mut next = next;
        let admitted = async {
            loop {
                let client = UnixStream::connect(&path).await.unwrap();
                tokio::select! {
                    joined = &mut next => break (joined.unwrap(), client),
                    // Refused (it was told so): try again.
                    _ = client.readable() => {}
                }
            }
        };
        let ((_conns, conn), fifth) = tokio::time::timeout(Duration::from_secs(5), admitted)
            .await
            .expect("a connection is let in after one closed");
        drop((fifth, conn, open, clients));
    }
}
