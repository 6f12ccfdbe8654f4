//! The server side of mutual TLS: TLS 1.3 only, a client certificate signed by the
//! configured CA required on every connection, ALPN `h2` for gRPC. Also reads a client's
//! name from its certificate, for ownership and logs.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::RemoteListen;
use crate::{Error, Result};

/// Builds the server's TLS configuration from the configured files, with messages that
/// name the file at fault.
pub fn server_config(remote: &RemoteListen) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&remote.cert, "--tls-cert", "server certificate")?;
    let key = PrivateKeyDer::from_pem_file(&remote.key).map_err(|e| {
        Error::Config(format!(
            "--tls-key {}: no usable private key: {e}",
            remote.key.display()
        ))
    })?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&remote.client_ca, "--client-ca", "CA certificate")? {
        roots.add(ca).map_err(|e| {
            Error::Config(format!("--client-ca {}: {e}", remote.client_ca.display()))
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Config(format!("--client-ca {}: {e}", remote.client_ca.display())))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Config(format!(
                "--tls-cert {} and --tls-key {} do not go together: {e}",
                remote.cert.display(),
                remote.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates in the file given to `flag`; errors exit as config errors.
fn read_certs(path: &Path, flag: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    pcap_core::connect::read_certs(path, &format!("{what} ({flag})"))
        .map_err(|e| Error::Config(e.to_string()))
}

/// The name a client certificate carries: its first DNS subject alternative name, as
/// written by `pcapd tls client --name NAME`.
pub fn client_name(cert: &CertificateDer<'_>) -> Option<String> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    let name = ee.valid_dns_names().next().map(str::to_owned);
    name
}
