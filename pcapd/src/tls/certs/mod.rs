//! `pcapd tls init` and `pcapd tls client`: a private CA, a server certificate for the
//! given host names and addresses, and client certificates signed by that CA.
//!
//! Keys are ECDSA P-256. The CA certificate cannot be parsed back (rcgen is built without
//! x509-parser), so `client` rebuilds the issuer from [`ca_params`], which is deterministic
//! and must stay identical to what `init` signed the CA with; every issued certificate is
//! then verified against `ca.pem` before anything is written.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName, UnixTime};

use crate::{Error, Result};

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server-key.pem";
/// Port shown in the next steps; the daemon's documented remote port.
const PORT: u16 = 2020;
const CA_DAYS: u64 = 3652;
const LEAF_DAYS: u64 = 730;
/// Certificates start a little in the past so that a peer whose clock lags accepts them.
const BACKDATE: Duration = Duration::from_secs(3600);
const DAY: u64 = 86_400;

/// Writes `ca.pem`, `ca-key.pem`, `server.pem` and `server-key.pem` into `out`.
pub fn init(out: &Path, hosts: &[String]) -> Result<()> {
    let (sans, note) = if hosts.is_empty() {
        default_hosts()
    } else {
        (server_names(hosts)?, None)
    };
    let names = [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY];
    refuse_existing(out, &names, "use another --out directory or remove them")?;
    create_dir(out)?;

    let ca_key = new_key()?;
    let mut params = ca_params();
    set_validity(&mut params, CA_DAYS);
    let ca_not_after = params.not_after.date().to_string();
    let ca_cert = params
        .self_signed(&ca_key)
        .map_err(rcgen_error("CA certificate"))?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params(), ca_key);

    let server_key = new_key()?;
    let server = leaf(
        &sans,
        ExtendedKeyUsagePurpose::ServerAuth,
        &server_key,
        &issuer,
    )?;
    let shown = sans.iter().map(san_text).collect::<Vec<_>>().join(", ");
    let files = [
        FileOut::public(CA_CERT, ca_cert.pem()),
        FileOut::secret(CA_KEY, ca_key_pem),
        FileOut::public(SERVER_CERT, server.cert.pem()),
        FileOut::secret(SERVER_KEY, server.key_pem),
    ];
    let dir = write_files(out, &files)?;

    let p = |name: &str| dir.join(name).display().to_string();
    println!(
        "wrote {}  CA certificate, valid until {} (clients need it)",
        p(CA_CERT),
        ca_not_after
    );
    println!(
        "wrote {}  CA private key, mode 0600 (keep it here; it issues client certificates)",
        p(CA_KEY)
    );
    println!(
        "wrote {}  server certificate for {shown}, valid until {}",
        p(SERVER_CERT),
        server.not_after
    );
    println!("wrote {}  server private key, mode 0600", p(SERVER_KEY));
    if let Some(note) = note {
        println!("note: {note}");
    }
    println!();
    println!("Next steps:");
    println!("  start pcapd with remote access (mutual TLS 1.3 only):");
    println!(
        "    pcapd --listen 0.0.0.0:{PORT} --tls-cert {} --tls-key {} --client-ca {}",
        p(SERVER_CERT),
        p(SERVER_KEY),
        p(CA_CERT)
    );
    println!("    (or set listen, tls_cert, tls_key and client_ca in /etc/pcapd/pcapd.toml)");
    println!("  issue a certificate for each client:");
    println!("    pcapd tls client --out {} --name NAME", dir.display());
    Ok(())
}

/// Writes `NAME.pem` and `NAME-key.pem` into `out`, signed by the CA found there.
pub fn client(out: &Path, name: &str) -> Result<()> {
    check_client_name(name)?;
    let ca_cert_path = out.join(CA_CERT);
    let ca_key_path = out.join(CA_KEY);
    for path in [&ca_cert_path, &ca_key_path] {
        if !path.exists() {
            return Err(Error::Invalid(format!(
                "{} not found: make the CA first with `pcapd tls init --out {}`",
                path.display(),
                out.display()
            )));
        }
    }
    let key_pem = std::fs::read_to_string(&ca_key_path).map_err(|e| Error::io(&ca_key_path, e))?;
    let ca_key = KeyPair::from_pem(&key_pem).map_err(|e| {
        Error::Invalid(format!("{}: not a private key: {e}", ca_key_path.display()))
    })?;
    let issuer = Issuer::new(ca_params(), ca_key);

    let (cert_name, key_name) = (format!("{name}.pem"), format!("{name}-key.pem"));
    refuse_existing(
        out,
        &[&cert_name, &key_name],
        "choose another --name or remove them",
    )?;
    let san = SanType::DnsName(name.try_into().map_err(rcgen_error("client name"))?);
    let issued = leaf(
        &[san],
        ExtendedKeyUsagePurpose::ClientAuth,
        &new_key()?,
        &issuer,
    )?;
    verify_client(&ca_cert_path, issued.cert.der())?;

    let files = [
        FileOut::public(&cert_name, issued.cert.pem()),
        FileOut::secret(&key_name, issued.key_pem),
    ];
    let dir = write_files(out, &files)?;
    let p = |file: &str| dir.join(file).display().to_string();
    println!(
        "wrote {}  client certificate for {name:?}, valid until {}",
        p(&cert_name),
        issued.not_after
    );
    println!("wrote {}  client private key, mode 0600", p(&key_name));
    println!();
    println!("Captures created with this certificate are owned by {name:?}.");
    println!(
        "To use it, copy ca.pem, {cert_name} and {key_name} to the client machine and run \
         there (HOST: a name or address in server.pem; paths: where the files are):"
    );
    println!(
        "  pcap remote add lab https://HOST:{PORT} --ca {} --cert {} --key {}",
        p(CA_CERT),
        p(&cert_name),
        p(&key_name)
    );
    Ok(())
}

/// The CA's subject, key usages and key-identifier method. `client` rebuilds the issuer
/// from this, so it must produce exactly what `init` signed the CA certificate with.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "pcapd CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

/// A freshly issued certificate with its private key.
struct Issued {
    cert: Certificate,
    key_pem: String,
    /// Last day of validity, as YYYY-MM-DD.
    not_after: String,
}

/// Signs an end-entity certificate for `sans` (the first one is also its CN).
fn leaf(
    sans: &[SanType],
    eku: ExtendedKeyUsagePurpose,
    key: &KeyPair,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<Issued> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        sans.first().map(san_text).unwrap_or_default(),
    );
    params.distinguished_name = dn;
    params.subject_alt_names = sans.to_vec();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_DAYS);
    let cert = params
        .signed_by(key, issuer)
        .map_err(rcgen_error("certificate"))?;
    Ok(Issued {
        cert,
        key_pem: key.serialize_pem(),
        not_after: params.not_after.date().to_string(),
    })
}

/// Sets a validity of `days` from now, starting [`BACKDATE`] ago.
fn set_validity(params: &mut CertificateParams, days: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + now.saturating_sub(BACKDATE);
    params.not_after = epoch + now + Duration::from_secs(days * DAY);
}

/// A new ECDSA P-256 key.
fn new_key() -> Result<KeyPair> {
    KeyPair::generate().map_err(rcgen_error("key pair"))
}

fn rcgen_error(what: &'static str) -> impl Fn(rcgen::Error) -> Error {
    move |e| Error::Config(format!("cannot make the {what}: {e}"))
}

/// The name or address a SAN stands for, as a person would write it.
fn san_text(san: &SanType) -> String {
    match san {
        SanType::DnsName(name) => name.as_str().to_owned(),
        SanType::IpAddress(ip) => ip.to_string(),
        _ => String::new(),
    }
}

// === host and client names ===

/// The server's names when no `--host` is given: this machine's host name, `localhost` and
/// the loopback addresses; plus a note when the host name could not be used.
fn default_hosts() -> (Vec<SanType>, Option<String>) {
    let mut sans = Vec::new();
    let mut note = None;
    match machine_hostname() {
        Some(name) if name.eq_ignore_ascii_case("localhost") => {}
        Some(name) => match check_host(&name) {
            Ok(san) => sans.push(san),
            Err(_) => {
                note = Some(format!(
                    "this machine's host name {name:?} is not a valid DNS name and was left out \
                     of server.pem; name the host with --host"
                ))
            }
        },
        None => {
            note =
                Some("this machine's host name could not be read; name the host with --host".into())
        }
    }
    sans.extend(
        ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .filter_map(|h| check_host(h).ok()),
    );
    (sans, note)
}

/// The kernel's host name, or the one configured in /etc/hostname.
fn machine_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .into_iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
}

/// The SANs for the `--host` values, in order and without repeats.
fn server_names(hosts: &[String]) -> Result<Vec<SanType>> {
    let mut sans: Vec<SanType> = Vec::new();
    for host in hosts {
        let san = check_host(host)?;
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

/// An IP address becomes an IP SAN, a host name a DNS SAN; anything else is refused.
fn check_host(host: &str) -> Result<SanType> {
    if host.is_empty() {
        return Err(Error::Invalid("--host must not be empty".into()));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if !is_dns_name(host) {
        return Err(Error::Invalid(format!(
            "--host {host:?} is neither an IP address nor a valid DNS name (letters, digits, \
             '-' and '.'; labels of 1-63 characters not starting or ending with '-')"
        )));
    }
    Ok(SanType::DnsName(
        host.try_into().map_err(rcgen_error("server certificate"))?,
    ))
}

/// Checks a client name: it becomes the certificate's CN and DNS SAN, which the daemon
/// reads back as the caller's identity, and the file names NAME.pem and NAME-key.pem.
fn check_client_name(name: &str) -> Result<()> {
    let starts_well = name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !(1..=64).contains(&name.len()) || !starts_well || !is_dns_name(name) {
        return Err(Error::Invalid(format!(
            "client name {name:?} is not valid: use 1-64 ASCII letters, digits, '-' and '.', \
             starting with a letter or digit and forming a DNS name (labels of 1-63 characters, \
             none ending in '-', the last not all digits), e.g. alice or alice.lab"
        )));
    }
    if name == "ca" || name == "server" {
        return Err(Error::Invalid(format!(
            "client name {name:?} is reserved for the CA and server files; choose another --name"
        )));
    }
    Ok(())
}

/// Host-name characters only (no '_', no trailing dot), and a name rustls accepts.
fn is_dns_name(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !s.ends_with('.')
        && DnsName::try_from(s).is_ok()
}

// === files ===

/// One file to write: certificates are public (0644), keys secret (0600).
struct FileOut {
    name: String,
    contents: String,
    mode: u32,
}

impl FileOut {
    fn public(name: &str, contents: String) -> Self {
        FileOut {
            name: name.into(),
            contents,
            mode: 0o644,
        }
    }

    fn secret(name: &str, contents: String) -> Self {
        FileOut {
            name: name.into(),
            contents,
            mode: 0o600,
        }
    }
}

/// Fails, naming them, if any of `names` exists in `out`: a CA or key is never overwritten.
fn refuse_existing(out: &Path, names: &[&str], hint: &str) -> Result<()> {
    let existing: Vec<String> = names
        .iter()
        .map(|name| out.join(name))
        .filter(|path| path.symlink_metadata().is_ok())
        .map(|path| path.display().to_string())
        .collect();
    if existing.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "refusing to overwrite {}: {hint}",
        existing.join(", ")
    )))
}

/// Creates `out` (and missing parents) as 0700; an existing directory is left as it is.
fn create_dir(out: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out)
        .map_err(|e| Error::io(out, e))
}

/// Writes every file or none: each is created exclusively with its final mode (a key is
/// never readable by others, not even briefly), and on failure the ones written so far
/// are removed. Returns `out` made absolute, for the messages.
fn write_files(out: &Path, files: &[FileOut]) -> Result<PathBuf> {
    let mut written = Vec::new();
    for file in files {
        let path = out.join(&file.name);
        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&path)
            .and_then(|mut f| {
                written.push(path.clone());
                f.write_all(file.contents.as_bytes())?;
                // The umask may have taken bits away from a certificate; put them back.
                f.set_permissions(std::fs::Permissions::from_mode(file.mode))?;
                f.sync_all()
            });
        if let Err(e) = result {
            for path in &written {
                let _ = std::fs::remove_file(path);
            }
            return Err(Error::io(path, e));
        }
    }
    Ok(out.canonicalize().unwrap_or_else(|_| out.to_path_buf()))
}

/// Checks that a newly issued client certificate is accepted by a verifier trusting
/// `ca.pem`, as the daemon's will be: it catches a `ca-key.pem` that does not belong to
/// `ca.pem`, or a CA not made by `pcapd tls init`.
fn verify_client(ca_path: &Path, cert: &CertificateDer<'_>) -> Result<()> {
    let bad_ca = |e: &dyn std::fmt::Display| {
        Error::Invalid(format!(
            "{}: cannot use it as the CA: {e}",
            ca_path.display()
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(ca_path).map_err(|e| bad_ca(&e))? {
        roots
            .add(der.map_err(|e| bad_ca(&e))?)
            .map_err(|e| bad_ca(&e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| bad_ca(&e))?;
    verifier
        .verify_client_cert(cert, &[], UnixTime::now())
        .map_err(|e| {
            Error::Invalid(format!(
                "a certificate signed with {} does not verify against {} ({e}): the two files \
                 must be the pair made by `pcapd tls init`",
                ca_path.with_file_name(CA_KEY).display(),
                ca_path.display()
            ))
        })?;
    Ok(())
}

#[cfg(test)]
mod tests;
