//! Prometheus metrics over plain HTTP: `GET /metrics` answers with the OpenMetrics text
//! format when the scraper asks for it (Prometheus does), else with the classic Prometheus
//! text format; encoded by the `prometheus-client` crate from what the registry knows at
//! that moment. Off unless `--metrics ADDR:PORT` is given.

mod classic;
mod collector;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

pub use collector::PcapdCollector;

use crate::decode::DecodeCollector;

use crate::registry::Registry;
use crate::{Error, Result};

/// The media type of what `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Scrapes served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the metrics listener (before privileges are dropped, like the API sockets).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| {
        Error::Config(format!(
            "cannot serve metrics on {addr}: {e} (is something else using it? choose another \
             --metrics ADDR:PORT)"
        ))
    })
}

/// Serves scrapes of `registry` until `stop` resolves.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    started: Instant,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut metrics = prometheus_client::registry::Registry::default();
    let decoded = registry.decode_metrics();
    metrics.register_collector(Box::new(PcapdCollector::new(registry, started)));
    metrics.register_collector(Box::new(DecodeCollector(decoded)));
    let metrics = Arc::new(metrics);
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stop);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a metrics connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(respond(&req, metrics).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(peer = %peer, error = %e, "metrics connection ended");
            }
        });
    }
}

/// `/metrics` for GET and HEAD; 404 elsewhere, 405 for other methods.
async fn respond<B>(
    req: &Request<B>,
    metrics: Arc<prometheus_client::registry::Registry>,
) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use GET\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let openmetrics = classic::wants_openmetrics(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    // The registry's lock can be held while a capture starts: encode off the runtime.
    let encoded = tokio::task::spawn_blocking(move || {
        let mut text = String::with_capacity(16 << 10);
        prometheus_client::encoding::text::encode(&mut text, &metrics).map(|()| text)
    })
    .await;
    match encoded {
        Ok(Ok(text)) if openmetrics => Response::builder()
            .header(header::CONTENT_TYPE, OPENMETRICS)
            .body(Full::new(Bytes::from(text)))
            .expect("a valid response"),
        Ok(Ok(text)) => Response::builder()
            .header(header::CONTENT_TYPE, classic::CONTENT_TYPE)
            .body(Full::new(Bytes::from(classic::from_openmetrics(&text))))
            .expect("a valid response"),
        _ => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed\n",
        ),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .expect("a valid response")
}
