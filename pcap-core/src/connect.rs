//! Client connections to a daemon. `unix:///path` (or a bare path) reaches a local pcapd,
//! `https://HOST[:PORT]` a remote one over mutual TLS. The first connection is made
//! eagerly so that "not running", "permission denied", "unreachable" and certificate
//! problems are told apart and explained before any call is made.

mod explain;
mod prefixed;
mod tls;
mod url;

pub use explain::explain_status;
pub use tls::{connect_tls, read_certs, TlsFiles};
pub use url::EndpointUrl;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::api::v1::pcapd_client::PcapdClient;
use crate::{Error, Result};

/// A connected API client.
pub type Client = PcapdClient<Channel>;

/// Connects to the endpoint named by `url`: `unix:///path/to/sock`, a plain path, or
/// `https://HOST[:PORT]`, which needs the client's certificate files in `tls`.
pub async fn connect(url: &str, tls: Option<&TlsFiles>) -> Result<Client> {
    if url.starts_with('/') || url.starts_with('.') {
        return connect_unix(Path::new(url)).await;
    }
    connect_to(&EndpointUrl::parse(url)?, tls).await
}

/// Connects to a parsed endpoint; `tls` is required for `https` and ignored otherwise.
pub async fn connect_to(url: &EndpointUrl, tls: Option<&TlsFiles>) -> Result<Client> {
    match url {
        EndpointUrl::Unix(path) => connect_unix(path).await,
        EndpointUrl::Https { host, port } => match tls {
            Some(files) => connect_tls(host, *port, files).await,
            None => Err(Error::Invalid(format!(
                "{url} needs a client certificate: pcapd accepts TLS connections only from \
                 clients that present one (give its CA, certificate and key files)"
            ))),
        },
    }
}

/// Connects to a pcapd listening on the UNIX socket at `path`.
pub async fn connect_unix(path: &Path) -> Result<Client> {
    let first = UnixStream::connect(path)
        .await
        .map_err(|e| classify(path, e))?;
    let first = Arc::new(Mutex::new(Some(first)));
    let owned: PathBuf = path.to_owned();
    // The URI is required by tonic but unused: the connector below decides where to go.
    let channel = tuned(Endpoint::try_from("http://[::]:50051").expect("static URI"))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let first = first.clone();
            let path = owned.clone();
            async move {
                let reused = first.lock().expect("connector lock").take();
                let stream = match reused {
                    Some(s) => s,
                    None => UnixStream::connect(&path).await?,
                };
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| Error::Connect {
            target: path.display().to_string(),
            message: e.to_string(),
        })?;
    Ok(client(channel))
}

/// HTTP/2 settings for streams of packets: with the protocol's default 64 KiB windows and
/// 16 KiB frames, a replay spends its time on flow control instead of moving bytes.
pub(crate) fn tuned(endpoint: Endpoint) -> Endpoint {
    endpoint
        .initial_stream_window_size(8 << 20)
        .initial_connection_window_size(16 << 20)
        .max_frame_size(1 << 20)
}

/// The API client on `channel`, with message limits fit for packet batches.
fn client(channel: Channel) -> Client {
    PcapdClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(16 << 20)
}

/// Turns a failed connect into an explanation a user can act on.
fn classify(path: &Path, e: std::io::Error) -> Error {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound | ConnectionRefused => Error::NotRunning {
            path: path.to_owned(),
        },
        PermissionDenied => Error::PermissionDenied {
            path: path.to_owned(),
            group: socket_group(path),
        },
        _ => Error::Connect {
            target: path.display().to_string(),
            message: e.to_string(),
        },
    }
}

/// Name of the group owning the socket (the group that grants access), `pcap` if unknown.
fn socket_group(path: &Path) -> String {
    let gid = std::fs::metadata(path).map(|m| m.gid()).ok();
    gid.and_then(group_name)
        .unwrap_or_else(|| "pcap".to_owned())
}

fn group_name(gid: u32) -> Option<String> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        (f.next()?.parse::<u32>().ok()? == gid).then(|| name.to_owned())
    })
}
