//! Tests of the certificate helper, including real TLS 1.3 handshakes in memory.
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;

use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use super::*;

fn hosts(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o777
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
}

fn key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).unwrap()
}

fn roots(path: &Path) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certs(path) {
        roots.add(cert).unwrap();
    }
    Arc::new(roots)
}

/// The daemon's side: TLS 1.3 only, a client certificate from `dir`'s CA required.
fn server_config(dir: &Path) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(&dir.join(CA_CERT)),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&dir.join(SERVER_CERT)), key(&dir.join(SERVER_KEY)))
        .unwrap();
    Arc::new(config)
}

/// A client trusting `ca_dir`'s CA and presenting `name`'s certificate from `cert_dir`.
fn client_config(ca_dir: &Path, cert_dir: &Path, name: &str) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots(&ca_dir.join(CA_CERT)))
        .with_client_auth_cert(
            certs(&cert_dir.join(format!("{name}.pem"))),
            key(&cert_dir.join(format!("{name}-key.pem"))),
        )
        .unwrap();
    Arc::new(config)
}

#[derive(Debug)]
enum Failed {
    Client(rustls::Error),
    Server(rustls::Error),
}

/// Moves every pending TLS record from one side to the other, in memory.
fn pump(
    from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
) -> std::result::Result<bool, rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rest = &buf[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
    }
    to.process_new_packets()?;
    Ok(!buf.is_empty())
}

/// Runs a full handshake plus one application message; returns the server side.
fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> std::result::Result<ServerConnection, Failed> {
    let mut client = ClientConnection::new(client, name).unwrap();
    let mut server = ServerConnection::new(server).unwrap();
    client.writer().write_all(b"ping").unwrap();
    for _ in 0..10 {
        let sent = pump(&mut client, &mut server).map_err(Failed::Server)?;
        let answered = pump(&mut server, &mut client).map_err(Failed::Client)?;
        if !sent && !answered {
            break;
        }
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    let mut got = [0u8; 4];
    std::io::Read::read_exact(&mut server.reader(), &mut got).unwrap();
    assert_eq!(&got, b"ping");
    Ok(server)
}

#[test]
fn init_then_client_writes_files_with_safe_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    init(&dir, &hosts(&["lab.example.net", "192.0.2.10"])).unwrap();
    assert_eq!(mode(&dir), 0o700);
    client(&dir, "alice").unwrap();
    for name in [CA_CERT, SERVER_CERT, "alice.pem"] {
        assert_eq!(mode(&dir.join(name)), 0o644, "{name}");
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{name}");
    }
    for name in [CA_KEY, SERVER_KEY, "alice-key.pem"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        key(&dir.join(name));
    }
}

#[test]
fn existing_directory_keeps_its_mode() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    init(tmp.path(), &hosts(&["localhost"])).unwrap();
    assert_eq!(mode(tmp.path()), 0o755);
}

#[test]
fn refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir, &hosts(&["localhost"])).unwrap();
    let ca = std::fs::read(dir.join(CA_CERT)).unwrap();
    let err = init(dir, &hosts(&["localhost"])).unwrap_err().to_string();
    assert!(
        err.contains("refusing to overwrite") && err.contains("ca.pem"),
        "{err}"
    );
    assert!(err.contains("another --out"), "{err}");
    assert_eq!(std::fs::read(dir.join(CA_CERT)).unwrap(), ca);

    client(dir, "alice").unwrap();
    let cert = std::fs::read(dir.join("alice.pem")).unwrap();
    let err = client(dir, "alice").unwrap_err().to_string();
    assert!(
        err.contains("alice.pem") && err.contains("alice-key.pem"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.join("alice.pem")).unwrap(), cert);

    // A single leftover file is enough to stop init, and nothing is written then.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join(SERVER_KEY), "x").unwrap();
    assert!(init(other.path(), &[]).is_err());
    assert!(!other.path().join(CA_CERT).exists());
}

#[test]
fn client_needs_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let err = client(tmp.path(), "alice").unwrap_err().to_string();
    assert!(err.contains("ca.pem not found"), "{err}");
    assert!(err.contains("pcapd tls init --out"), "{err}");

    init(tmp.path(), &hosts(&["localhost"])).unwrap();
    std::fs::remove_file(tmp.path().join(CA_KEY)).unwrap();
    let err = client(tmp.path(), "alice").unwrap_err().to_string();
    assert!(err.contains("ca-key.pem not found"), "{err}");
    assert!(!tmp.path().join("alice.pem").exists());
}

#[test]
fn client_refuses_a_key_that_is_not_the_cas() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    init(a.path(), &hosts(&["localhost"])).unwrap();
    init(b.path(), &hosts(&["localhost"])).unwrap();
    std::fs::remove_file(a.path().join(CA_KEY)).unwrap();
    std::fs::copy(b.path().join(CA_KEY), a.path().join(CA_KEY)).unwrap();
    let err = client(a.path(), "alice").unwrap_err().to_string();
    assert!(err.contains("does not verify"), "{err}");
    assert!(!a.path().join("alice.pem").exists());
    assert!(!a.path().join("alice-key.pem").exists());
}

#[test]
fn bad_names_and_hosts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for host in [
        "",
        "-lab",
        "lab-",
        "lab_1.example",
        "a..b",
        "lab.example.",
        "lab example",
        "fe80::1%eth0",
        "[::1]",
        "1.2.3",
    ] {
        let err = init(tmp.path(), &hosts(&[host])).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{host:?}: {err}");
    }
    assert!(!tmp.path().join(CA_CERT).exists());

    init(tmp.path(), &hosts(&["localhost"])).unwrap();
    let long = "a".repeat(65);
    for name in [
        "",
        "-alice",
        ".alice",
        "alice_b",
        "al ice",
        "alice/x",
        "../x",
        "alice.",
        "a..b",
        "123",
        "ca",
        "server",
        &long,
        &"a".repeat(64),
    ] {
        let err = client(tmp.path(), name).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{name:?}: {err}");
    }
    let longest = format!("{}.lab", "a".repeat(60));
    for name in ["alice", "Bob-2", "alice.lab", "9lives", &longest] {
        client(tmp.path(), name).unwrap();
    }
}

#[test]
fn hosts_become_ip_or_dns_names() {
    let sans = server_names(&hosts(&[
        "lab.example.net",
        "192.0.2.10",
        "::1",
        "192.0.2.10",
    ]))
    .unwrap();
    assert_eq!(
        sans,
        vec![
            SanType::DnsName("lab.example.net".try_into().unwrap()),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ]
    );
    let (sans, _) = default_hosts();
    assert!(sans.contains(&SanType::DnsName("localhost".try_into().unwrap())));
    assert!(sans.contains(&SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))));
    assert!(sans.contains(&SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST))));
}

#[test]
fn ca_params_rebuild_the_issuer_init_signed_with() {
    // `client` depends on this: the same subject bytes and key identifier every time.
    let key = KeyPair::generate().unwrap();
    let tbs = |cert: &Certificate| {
        // ECDSA signatures differ each time; compare the signed part only.
        let der = cert.der().to_vec();
        assert_eq!(der[4..6], [0x30, 0x82]);
        let len = usize::from(u16::from_be_bytes([der[6], der[7]]));
        der[4..8 + len].to_vec()
    };
    let a = ca_params().self_signed(&key).unwrap();
    let b = ca_params().self_signed(&key).unwrap();
    assert_eq!(tbs(&a), tbs(&b));
    assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
}

#[test]
fn mutual_tls_handshake_by_name_and_address() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init(dir, &[]).unwrap();
    client(dir, "alice").unwrap();
    let alice = certs(&dir.join("alice.pem")).remove(0);
    for name in [
        ServerName::try_from("localhost").unwrap(),
        ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into()),
        ServerName::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST).into()),
    ] {
        let server = handshake(server_config(dir), client_config(dir, dir, "alice"), name)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            server.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(server.peer_certificates().unwrap()[0], alice);
    }
    // A name the server certificate does not carry is refused by the client.
    let err = handshake(
        server_config(dir),
        client_config(dir, dir, "alice"),
        ServerName::try_from("elsewhere.example").unwrap(),
    )
    .unwrap_err();
    assert!(
        matches!(err, Failed::Client(rustls::Error::InvalidCertificate(_))),
        "{err:?}"
    );
}

#[test]
fn client_from_another_ca_is_rejected() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    init(ours.path(), &hosts(&["localhost", "127.0.0.1"])).unwrap();
    init(theirs.path(), &hosts(&["localhost"])).unwrap();
    client(theirs.path(), "mallory").unwrap();
    // The client trusts our server; only its own certificate is foreign.
    let err = handshake(
        server_config(ours.path()),
        client_config(ours.path(), theirs.path(), "mallory"),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            // Every pcapd CA is called "pcapd CA", so the server finds a CA of that
            // name and then the signature does not match it.
            Failed::Server(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature | rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
}
