//! `connect_tls` against a small TLS 1.3 server on 127.0.0.1 that, like pcapd, requires a
//! client certificate: each way the connection can fail must be told in words naming the
//! file or host at fault.

use std::path::Path;
use std::sync::Arc;

use pcap_core::api::v1 as api;
use pcap_core::connect::{connect_tls, explain_status, TlsFiles};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A CA that can sign server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A certificate for `names` (DNS names or IP addresses) and its key.
    fn issue(&self, names: &[&str]) -> (rcgen::Certificate, KeyPair) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert, key)
    }

    fn write(&self, path: &Path) {
        std::fs::write(path, self.issuer.pem()).unwrap();
    }
}

/// The client's files: the CA it trusts for servers and its own certificate from `signer`.
fn client_files(dir: &Path, trusted: &Ca, signer: &Ca) -> TlsFiles {
    let (cert, key) = signer.issue(&["client.example"]);
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("client.pem"),
        key: dir.join("client.key"),
    };
    trusted.write(&files.ca);
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

/// Serves TLS 1.3 on 127.0.0.1 with a certificate for `names` from `server_ca`, accepting
/// only clients with a certificate from `client_ca`. After a handshake it sends an empty
/// HTTP/2 SETTINGS frame, as an HTTP/2 server does first. Returns the port.
async fn serve(server_ca: &Ca, names: &[&str], client_ca: &Ca) -> u16 {
    serve_with(server_ca, names, client_ca, true).await
}

/// [`serve`], saying nothing after the handshake unless `speaks`.
async fn serve_with(server_ca: &Ca, names: &[&str], client_ca: &Ca, speaks: bool) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(client_ca.der()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let (cert, key) = server_ca.issue(names);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    if speaks {
                        let _ = tls.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
                        let _ = tls.flush().await;
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn server_certificate_from_another_ca_names_the_ca_file() {
    let (ours, theirs) = (Ca::new("ours"), Ca::new("theirs"));
    let dir = tempfile::tempdir().unwrap();
    let files = client_files(dir.path(), &ours, &ours);
    let port = serve(&theirs, &["127.0.0.1"], &ours).await;
    let e = connect_tls("127.0.0.1", port, &files)
        .await
        .unwrap_err()
        .to_string();
    let want = format!(
        "the server's certificate is not signed by the CA in {}",
        files.ca.display()
    );
    assert!(e.starts_with(&want), "{e}");
}

#[tokio::test]
async fn server_certificate_for_another_name_names_the_host() {
    let ca = Ca::new("ca");
    let dir = tempfile::tempdir().unwrap();
    let files = client_files(dir.path(), &ca, &ca);
    let port = serve(&ca, &["other.example"], &ca).await;
    let e = connect_tls("127.0.0.1", port, &files)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("the server's certificate is not valid for 127.0.0.1"),
        "{e}"
    );
}

#[tokio::test]
async fn nothing_listening_says_which_host_and_port() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ca = Ca::new("ca");
    let dir = tempfile::tempdir().unwrap();
    let files = client_files(dir.path(), &ca, &ca);
    let e = connect_tls("127.0.0.1", port, &files)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "cannot reach 127.0.0.1:{port}: connection refused"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn client_certificate_the_server_refuses_names_the_certificate_file() {
    let (ours, theirs) = (Ca::new("ours"), Ca::new("theirs"));
    let dir = tempfile::tempdir().unwrap();
    // The client trusts the server, but its own certificate is from a CA the server
    // does not trust. TLS 1.3 tells only after the client's handshake is done; the
    // server's alert is awaited at connect time.
    let files = client_files(dir.path(), &ours, &theirs);
    let port = serve(&ours, &["127.0.0.1"], &ours).await;
    let e = connect_tls("127.0.0.1", port, &files)
        .await
        .unwrap_err()
        .to_string();
    let want = format!(
        "the server did not accept the client certificate {} (is it signed by the CA the \
         server trusts, given with --client-ca?)",
        files.cert.display()
    );
    assert_eq!(e, want);
}

#[tokio::test]
async fn a_silent_server_is_not_taken_for_a_refusal() {
    let ca = Ca::new("ca");
    let dir = tempfile::tempdir().unwrap();
    let files = client_files(dir.path(), &ca, &ca);
    // A server that accepts the client but says nothing: connecting waits a little for
    // it, then goes on; the call fails when the server goes away.
    let port = serve_with(&ca, &["127.0.0.1"], &ca, false).await;
    let mut client = connect_tls("127.0.0.1", port, &files).await.unwrap();
    let status = client
        .version(api::VersionRequest {})
        .await
        .expect_err("the server says nothing");
    // Not a TLS failure: nothing to explain, and no false accusation of the certificate.
    assert_eq!(explain_status(&status, "127.0.0.1", port, &files), None);
}

#[tokio::test]
async fn matching_certificates_connect() {
    let ca = Ca::new("ca");
    let dir = tempfile::tempdir().unwrap();
    let files = client_files(dir.path(), &ca, &ca);
    let port = serve(&ca, &["localhost", "127.0.0.1"], &ca).await;
    connect_tls("127.0.0.1", port, &files).await.unwrap();
    connect_tls("localhost", port, &files).await.unwrap();
}
