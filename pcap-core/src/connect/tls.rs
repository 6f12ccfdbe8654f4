//! Mutual TLS to pcapd's TCP listener: TLS 1.3 only, the server checked against a given
//! CA, and a client certificate always presented (pcapd has no anonymous mode). The
//! connection is built by hand rather than by tonic so that each way a handshake fails
//! can be told in words.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Endpoint, Uri};

use super::explain::{handshake_error, Peer};
use super::prefixed::Prefixed;
use super::url::bracketed;
use super::{client, Client};
use crate::{Error, Result};

/// How long reaching the server and completing the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait, after the handshake, for the server's first word (an HTTP/2 server
/// speaks first) or its refusal of the client certificate; a server still silent then is
/// taken to be fine.
const FIRST_WORD_WAIT: Duration = Duration::from_secs(3);

/// The connection handed to tonic.
type Stream = Prefixed<TlsStream<TcpStream>>;

/// The PEM files a client needs for pcapd's TLS listener.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsFiles {
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// The client certificate (chain) presented to the server.
    pub cert: PathBuf,
    /// The private key of `cert`.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads the three files into a client configuration; errors name the file at fault.
    /// Also serves to check the files when they are first given.
    pub fn client_config(&self) -> Result<ClientConfig> {
        let roots = self.roots()?;
        let chain = read_certs(&self.cert, "client certificate")?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| {
            Error::Invalid(format!(
                "cannot read a private key from {}: {}",
                self.key.display(),
                pem_reason(e)
            ))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::Invalid(format!("TLS set-up: {e}")))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                Error::Invalid(format!(
                    "the client certificate {} cannot be used with the key {}: {e}",
                    self.cert.display(),
                    self.key.display()
                ))
            })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        for cert in read_certs(&self.ca, "CA certificate")? {
            roots.add(cert).map_err(|e| {
                Error::Invalid(format!(
                    "{} holds a certificate that cannot serve as a CA: {e}",
                    self.ca.display()
                ))
            })?;
        }
        Ok(roots)
    }
}

/// Every certificate in the PEM file at `path`; at least one. Used by the client for its
/// CA and certificate and by pcapd for its server certificate and client CA; the error
/// names `what` was being read and the file: "cannot read a CA certificate from ca.pem: ...".
pub fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let fail = |reason: String| {
        Error::Invalid(format!(
            "cannot read a {what} from {}: {reason}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_reason(e)))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_reason(e)))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error::*;
    match e {
        Io(e) => e.to_string(),
        NoItemsFound => "no PEM section of that kind in it".to_owned(),
        other => format!("not valid PEM ({other})"),
    }
}

/// Connects to pcapd's TLS listener at `host:port` with the client certificate in `files`.
/// The TCP connection and the handshake are made here, so that an unreachable host and a
/// certificate the client does not trust are reported now. TLS 1.3 tells a client that its
/// certificate was refused only after the client's side of the handshake, so the server's
/// first word is awaited too (pcapd speaks first, as HTTP/2 servers do); should that be
/// missed, [`super::explain_status`] words the failure of the first call.
pub async fn connect_tls(host: &str, port: u16, files: &TlsFiles) -> Result<Client> {
    let config = Arc::new(files.client_config()?);
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|_| Error::Invalid(format!("{host:?} is not a valid host name or IP address")))?;
    let dial = Dial {
        host: host.to_owned(),
        port,
        files: files.clone(),
        connector: TlsConnector::from(config),
        server_name,
    };
    let first = dial.connect().await?;
    let first = Arc::new(Mutex::new(Some(first)));
    let authority = format!("http://{}:{port}", bracketed(host));
    let endpoint = Endpoint::try_from(authority.clone())
        .map(super::tuned)
        .map_err(|e| Error::Invalid(format!("{authority}: {e}")))?;
    let dial = Arc::new(dial);
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let first = first.clone();
            let dial = dial.clone();
            async move {
                let reused = first.lock().expect("connector lock").take();
                let stream = match reused {
                    Some(s) => s,
                    None => dial.connect().await.map_err(io::Error::other)?,
                };
                Ok::<_, io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| Error::Connect {
            target: format!("{}:{port}", bracketed(host)),
            message: e.to_string(),
        })?;
    Ok(client(channel))
}

/// Everything needed to make a connection again when tonic reconnects.
struct Dial {
    host: String,
    port: u16,
    files: TlsFiles,
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl Dial {
    fn peer(&self) -> Peer<'_> {
        Peer {
            host: &self.host,
            port: self.port,
            files: &self.files,
        }
    }

    /// TCP, the TLS handshake, then the server's first word, each failure explained.
    async fn connect(&self) -> Result<Stream> {
        let peer = self.peer();
        let attempt = async {
            let tcp = reach(&peer).await?;
            let _ = tcp.set_nodelay(true);
            let tls = self
                .connector
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| handshake_error(&peer, e))?;
            first_word(&peer, tls).await
        };
        tokio::time::timeout(CONNECT_TIMEOUT, attempt)
            .await
            .map_err(|_| Error::Unreachable {
                target: peer.authority(),
                message: format!(
                    "no answer within {}s (is the host up, and port {} open to you?)",
                    CONNECT_TIMEOUT.as_secs(),
                    self.port
                ),
            })?
    }
}

/// Waits for the server to speak first, which it does only once it has accepted the
/// client certificate; its refusal arrives instead as an alert. What was read is kept for
/// the HTTP/2 client.
async fn first_word(peer: &Peer<'_>, mut tls: TlsStream<TcpStream>) -> Result<Stream> {
    let mut buf = vec![0; 4096];
    match tokio::time::timeout(FIRST_WORD_WAIT, tls.read(&mut buf)).await {
        // Silent so far: let the first call find out. Bytes rustls has taken in stay there.
        Err(_) => Ok(Prefixed::new(Vec::new(), tls)),
        Ok(Ok(0)) => Err(closed_after_handshake(peer)),
        Ok(Ok(n)) => {
            buf.truncate(n);
            Ok(Prefixed::new(buf, tls))
        }
        Ok(Err(e)) if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) => {
            Err(handshake_error(peer, e))
        }
        Ok(Err(e)) => match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                Err(closed_after_handshake(peer))
            }
            _ => Err(Error::Connect {
                target: peer.authority(),
                message: e.to_string(),
            }),
        },
    }
}

fn closed_after_handshake(peer: &Peer<'_>) -> Error {
    Error::Tls {
        message: format!(
            "{} closed the connection right after the TLS handshake (did it refuse the \
             client certificate {}?)",
            peer.authority(),
            peer.files.cert.display()
        ),
    }
}

/// A TCP connection to the first address of `peer` that answers.
async fn reach(peer: &Peer<'_>) -> Result<TcpStream> {
    let unreachable = |message: String| Error::Unreachable {
        target: peer.authority(),
        message,
    };
    let addrs: Vec<_> = tokio::net::lookup_host((peer.host, peer.port))
        .await
        .map_err(|e| unreachable(format!("cannot resolve the name {}: {e}", peer.host)))?
        .collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(unreachable(match last {
        None => format!("the name {} has no address", peer.host),
        Some(e) => connect_reason(&e, peer.port),
    }))
}

/// Why a TCP connect failed, in words.
fn connect_reason(e: &io::Error, port: u16) -> String {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => {
            format!("connection refused (is pcapd running there with --listen on port {port}?)")
        }
        HostUnreachable | NetworkUnreachable => format!("{e} (check the address and routes)"),
        TimedOut => format!("{e} (is the host up, and port {port} open to you?)"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failures_in_words() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            connect_reason(&refused, 2020),
            "connection refused (is pcapd running there with --listen on port 2020?)"
        );
    }

    #[test]
    fn missing_and_wrong_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("client.pem"),
            key: dir.path().join("client.key"),
        };
        let e = files.client_config().unwrap_err().to_string();
        assert!(e.starts_with("cannot read a CA certificate from "), "{e}");
        assert!(e.contains("ca.pem"), "{e}");
        std::fs::write(&files.ca, "not pem\n").unwrap();
        let e = files.client_config().unwrap_err().to_string();
        assert!(e.contains("ca.pem: no PEM certificate in it"), "{e}");
    }
}
