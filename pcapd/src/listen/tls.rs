//! The remote listener: TCP, then a TLS handshake with a deadline, then the connection is
//! handed to the gRPC server together with the client's identity. A client that fails
//! the handshake (no certificate, another CA, plaintext) never reaches the API.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::{Error, Result};

/// How long a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more wait in the kernel's accept queue.
const MAX_HANDSHAKES: usize = 64;

/// Who is at the other end of a remote connection.
#[derive(Debug, Clone)]
pub struct RemotePeer {
    pub addr: SocketAddr,
    /// Name from the client certificate.
    pub name: String,
}

/// An authenticated remote connection.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    peer: RemotePeer,
}

/// Binds the remote listener.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| {
        Error::Config(format!(
            "cannot listen on {addr}: {e} (is another pcapd using it?)"
        ))
    })
}

/// Accepts connections and yields those whose TLS handshake succeeds, each with the TLS
/// configuration `config` holds when it connects (certificates replaced by a reload apply
/// to new connections). Stops accepting, and closes the listening socket, once `stop`
/// turns true.
pub fn incoming(
    listener: TcpListener,
    config: watch::Receiver<Arc<rustls::ServerConfig>>,
    mut stop: watch::Receiver<bool>,
) -> ReceiverStream<std::io::Result<TlsConn>> {
    let (tx, rx) = mpsc::channel(16);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (tcp, addr) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a remote connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
                _ = stopped(&mut stop) => return,
            };
            let acceptor = TlsAcceptor::from(config.borrow().clone());
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let name = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(crate::tls::server::client_name)
                            .unwrap_or_else(|| "unnamed certificate".to_owned());
                        tracing::info!(peer = %addr, client = %name, "remote client connected");
                        let _ = tx
                            .send(Ok(TlsConn {
                                stream,
                                peer: RemotePeer { addr, name },
                            }))
                            .await;
                    }
                    Ok(Err(e)) => tracing::warn!(peer = %addr, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::warn!(peer = %addr, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

// === impl TlsConn ===

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = RemotePeer;

    fn connect_info(&self) -> RemotePeer {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
