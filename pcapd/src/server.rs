//! Runs the daemon: open the registry, bind the socket, serve until a signal, then drain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pcap_core::api::v1::pcapd_server::PcapdServer;
use tokio::signal::unix::{signal, SignalKind};
use tokio_stream::wrappers::UnixListenerStream;

use crate::config::{Config, Flags};
use crate::registry::Registry;
use crate::reload::Reloader;
use crate::service::PcapdService;
use crate::Result;

/// How long in-flight calls get to finish at exit.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The listening sockets, bound before privileges are dropped.
pub struct Bound {
    unix: std::os::unix::net::UnixListener,
    /// The socket file pcapd made and removes at exit; `None` when systemd passed the
    /// socket (it owns the file).
    socket_file: Option<std::path::PathBuf>,
    remote: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
    metrics: Option<std::net::TcpListener>,
    /// When the daemon started, for its uptime.
    started: Instant,
}

impl Bound {
    /// Removes the socket file if pcapd made it (when start-up fails after binding).
    pub fn remove_socket(&self) {
        if let Some(f) = &self.socket_file {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Checks the TLS material and binds the UNIX socket and, if configured, the remote
/// listener. Runs before the runtime starts, so that privileges can be dropped after it.
pub fn bind(config: &Config) -> Result<Bound> {
    let started = Instant::now();
    // Everything that can be refused is checked before the first socket is bound.
    let tls = config
        .remote
        .as_ref()
        .map(crate::tls::server::server_config)
        .transpose()?;
    let (unix, socket_file) = match crate::listen::unix::inherited()? {
        Some(l) => {
            tracing::info!("serving the socket passed by systemd");
            (l, None)
        }
        None => (
            crate::listen::unix::bind(&config.socket, config.socket_group.as_deref())?,
            Some(config.socket.clone()),
        ),
    };
    let cleanup = |e| {
        if let Some(f) = &socket_file {
            let _ = std::fs::remove_file(f);
        }
        e
    };
    let remote = match (&config.remote, tls) {
        (Some(r), Some(tls)) => Some((crate::listen::tls::bind(r.addr).map_err(cleanup)?, tls)),
        _ => None,
    };
    let metrics = config
        .metrics
        .map(crate::metrics::bind)
        .transpose()
        .map_err(cleanup)?;
    Ok(Bound {
        unix,
        socket_file,
        remote,
        metrics,
        started,
    })
}

/// Serves until SIGTERM or SIGINT; SIGHUP reloads the config file.
pub async fn run(config: Config, flags: Flags, bound: Bound) -> Result<()> {
    let socket = config.socket.clone();
    let socket_file = bound.socket_file.clone();
    let remove_socket = move || {
        if let Some(f) = &socket_file {
            let _ = std::fs::remove_file(f);
        }
    };
    let listener = tokio_listener(bound.unix)?;
    let remote = match bound.remote {
        Some((tcp, tls)) => Some((tokio_tcp(tcp, "remote listener")?, tls)),
        None => None,
    };
    let metrics_listener = match bound.metrics {
        Some(tcp) => Some(tokio_tcp(tcp, "metrics listener")?),
        None => None,
    };
    let (max_request_bytes, max_local) = (config.max_request_bytes, config.max_local_connections);
    let registry = match Registry::open(config) {
        Ok(r) => r,
        Err(e) => {
            remove_socket();
            return Err(e);
        }
    };
    tracing::info!(socket = %socket.display(), "pcapd {} serving", env!("CARGO_PKG_VERSION"));

    let mut term = signal(SignalKind::terminate()).map_err(|e| crate::Error::io("signal", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| crate::Error::io("signal", e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| crate::Error::io("signal", e))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let service = PcapdServer::new(PcapdService::new(registry.clone()))
        .max_decoding_message_size(max_request_bytes);
    let (reflection_v1, reflection_v1alpha) = match reflection() {
        Ok(r) => r,
        Err(e) => {
            remove_socket();
            return Err(e);
        }
    };

    let local = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(explain_oversized())
            .add_service(service.clone())
            .add_service(reflection_v1.clone())
            .add_service(reflection_v1alpha.clone())
            .serve_with_incoming_shutdown(
                crate::listen::limit::limited(UnixListenerStream::new(listener), max_local),
                stopped(stop_rx.clone()),
            ),
    );
    let serve_remote: crate::reload::ServeRemote = {
        let stop_rx = stop_rx.clone();
        Arc::new(move |tcp, tls: crate::reload::RemoteTls| {
            let shutdown = stopped(stop_rx.clone());
            let retired = stopped(tls.stop.clone());
            let server = tonic::transport::Server::builder()
                .layer(explain_oversized())
                .add_service(service.clone())
                .add_service(reflection_v1.clone())
                .add_service(reflection_v1alpha.clone())
                .serve_with_incoming_shutdown(
                    crate::listen::tls::incoming(tcp, tls.config, tls.stop),
                    async move {
                        tokio::select! {
                            _ = shutdown => {}
                            _ = retired => {}
                        }
                    },
                );
            tokio::spawn(async move {
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "remote listener failed");
                }
            })
        })
    };
    let mut reloader = Reloader::new(registry.clone(), flags, serve_remote, remote);
    let metrics = metrics_listener.map(|tcp| {
        tracing::info!(listen = %tcp.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            "serving Prometheus metrics at /metrics");
        tokio::spawn(crate::metrics::serve(
            tcp,
            registry.clone(),
            bound.started,
            stopped(stop_rx.clone()),
        ))
    });

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reloader.reload().await,
        }
    }
    tracing::info!("shutting down: closing segments");
    // Stopping the capture threads first also ends live streams, so the server can drain.
    registry.shutdown().await;
    let _ = stop_tx.send(true);
    if let Some(m) = metrics {
        let _ = m.await;
    }
    let remote_servers = reloader.close();
    let drained = async move {
        let _ = local.await;
        for h in remote_servers {
            let _ = h.await;
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("calls still running after {DRAIN_TIMEOUT:?}; exiting anyway");
    }
    remove_socket();
    tracing::info!("stopped");
    Ok(())
}

/// gRPC server reflection of `pcap.v1` in both protocol versions: v1 (grpcurl, recent
/// clients) and v1alpha (grpcio's reflection client and older tools).
fn reflection() -> Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pcap_core::api::FILE_DESCRIPTOR_SET)
    };
    let failed = |e: tonic_reflection::server::Error| {
        crate::Error::Unavailable(format!("cannot set up gRPC server reflection: {e}"))
    };
    Ok((
        builder().build_v1().map_err(failed)?,
        builder().build_v1alpha().map_err(failed)?,
    ))
}

/// tonic refuses a request above max_request_bytes with its own words ("Error, decoded
/// message length too large: ...") and OUT_OF_RANGE; this says what the limit is called
/// and answers INVALID_ARGUMENT, as other bad requests are.
fn explain_oversized() -> tower::util::MapResponseLayer<
    fn(http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body>,
> {
    tower::util::MapResponseLayer::new(|mut response: http::Response<tonic::body::Body>| {
        rewrite_oversized(response.headers_mut());
        response
    })
}

fn rewrite_oversized(headers: &mut http::HeaderMap) {
    let Some(status) = tonic::Status::from_header_map(headers) else {
        return;
    };
    let Some(sizes) = status
        .message()
        .strip_prefix("Error, decoded message length too large: found ")
    else {
        return;
    };
    // "N bytes, the limit is: M bytes"
    let numbers: Vec<&str> = sizes
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let [found, limit] = numbers[..] else {
        return;
    };
    let explained = tonic::Status::from(crate::Error::Invalid(format!(
        "the request is {found} bytes, more than the {limit} bytes pcapd accepts \
         (max_request_bytes in its config file): send less at once"
    )));
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    let _ = explained.add_header(headers);
}

fn tokio_listener(l: std::os::unix::net::UnixListener) -> Result<tokio::net::UnixListener> {
    l.set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(l))
        .map_err(|e| crate::Error::io("unix socket", e))
}

fn tokio_tcp(l: std::net::TcpListener, what: &str) -> Result<tokio::net::TcpListener> {
    l.set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(l))
        .map_err(|e| crate::Error::io(what, e))
}

/// Resolves once shutdown is asked for.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_size_refusal_is_explained() {
        let mut headers = http::HeaderMap::new();
        tonic::Status::out_of_range(
            "Error, decoded message length too large: found 1105022 bytes, the limit is: \
             1048576 bytes",
        )
        .add_header(&mut headers)
        .unwrap();
        rewrite_oversized(&mut headers);
        let s = tonic::Status::from_header_map(&headers).unwrap();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(s.message().contains("1105022 bytes"), "{}", s.message());
        assert!(s.message().contains("max_request_bytes"), "{}", s.message());
        // Anything else passes untouched.
        let mut other = http::HeaderMap::new();
        tonic::Status::not_found("no capture")
            .add_header(&mut other)
            .unwrap();
        rewrite_oversized(&mut other);
        let s = tonic::Status::from_header_map(&other).unwrap();
        assert_eq!(
            (s.code(), s.message()),
            (tonic::Code::NotFound, "no capture")
        );
    }
}
