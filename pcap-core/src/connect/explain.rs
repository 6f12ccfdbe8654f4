//! Failed TLS connections told in words. rustls says what went wrong precisely, but in its
//! own terms and often several wrappers deep (an `io::Error` inside a hyper error inside a
//! `tonic::Status`, or only as text once h2 has copied it); this finds it and says which
//! file or name is at fault.

use std::error::Error as StdError;
use std::io;

use rustls::{AlertDescription, CertificateError};

use super::url::bracketed;
use super::TlsFiles;
use crate::Error;

/// The server being reached and the files used, for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer<'a> {
    pub host: &'a str,
    pub port: u16,
    pub files: &'a TlsFiles,
}

impl Peer<'_> {
    /// `HOST:PORT`, an IPv6 address in brackets.
    pub fn authority(&self) -> String {
        format!("{}:{}", bracketed(self.host), self.port)
    }
}

/// The error for a TLS handshake that failed with `e`.
pub(crate) fn handshake_error(peer: &Peer<'_>, e: io::Error) -> Error {
    let message = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => explain_rustls(peer, tls),
        None => match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => format!(
                "{} closed the connection during the TLS handshake (is that pcapd's TLS \
                 listener, started with --listen?)",
                peer.authority()
            ),
            _ => format!("the TLS handshake with {} failed: {e}", peer.authority()),
        },
    };
    Error::Tls { message }
}

/// What went wrong when a call over TLS to `host:port` failed with `status`, if it was the
/// TLS connection (the client certificate refused, most often: in TLS 1.3 the server tells
/// so only after the client's side of the handshake is over, when the first call is made).
/// `None` when the status has nothing to do with TLS.
pub fn explain_status(
    status: &tonic::Status,
    host: &str,
    port: u16,
    files: &TlsFiles,
) -> Option<String> {
    let peer = Peer { host, port, files };
    let mut next: Option<&(dyn StdError + 'static)> = Some(status);
    while let Some(e) = next {
        if let Some(message) = explain_one(&peer, e) {
            return Some(message);
        }
        next = e.source();
    }
    None
}

/// The explanation if `e` itself is, holds or quotes a TLS failure.
fn explain_one(peer: &Peer<'_>, e: &(dyn StdError + 'static)) -> Option<String> {
    // A reconnect that failed in this crate's connector is already explained.
    let inner = e
        .downcast_ref::<io::Error>()
        .and_then(|io| io.get_ref())
        .map(|i| i as &(dyn StdError + 'static));
    for candidate in [Some(e), inner].into_iter().flatten() {
        if let Some(ours) = candidate.downcast_ref::<Error>() {
            if matches!(ours, Error::Tls { .. } | Error::Unreachable { .. }) {
                return Some(ours.to_string());
            }
        }
        if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
            return Some(explain_rustls(peer, tls));
        }
    }
    // h2 hands the same I/O error to every stream as text only.
    alert_in_text(&e.to_string()).map(|alert| explain_alert(peer, alert))
}

/// The alert named in rustls's text for [`rustls::Error::AlertReceived`], if any.
fn alert_in_text(text: &str) -> Option<AlertDescription> {
    const MARK: &str = "received fatal alert: ";
    let start = text.find(MARK)? + MARK.len();
    let word: String = text[start..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    KNOWN_ALERTS
        .iter()
        .copied()
        .find(|a| format!("{a:?}") == word)
}

/// Alerts a server may send about a connection, looked up by name in [`alert_in_text`].
const KNOWN_ALERTS: &[AlertDescription] = &[
    AlertDescription::CertificateRequired,
    AlertDescription::BadCertificate,
    AlertDescription::UnsupportedCertificate,
    AlertDescription::CertificateRevoked,
    AlertDescription::CertificateExpired,
    AlertDescription::CertificateUnknown,
    AlertDescription::UnknownCA,
    AlertDescription::AccessDenied,
    AlertDescription::DecryptError,
    AlertDescription::HandshakeFailure,
    AlertDescription::ProtocolVersion,
    AlertDescription::NoApplicationProtocol,
    AlertDescription::InternalError,
    AlertDescription::IllegalParameter,
    AlertDescription::DecodeError,
];

/// A rustls error in words, naming the file or host at fault.
pub(crate) fn explain_rustls(peer: &Peer<'_>, e: &rustls::Error) -> String {
    use CertificateError as C;
    let ca = peer.files.ca.display();
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension => format!(
                "the server's certificate is not signed by the CA in {ca} (is that the CA \
                 of pcapd on {}?)",
                peer.authority()
            ),
            C::NotValidForName => not_valid_for(peer, ""),
            C::NotValidForNameContext { presented, .. } => {
                not_valid_for(peer, &format!(": it is for {}", presented.join(", ")))
            }
            C::Expired | C::ExpiredContext { .. } => format!(
                "the server's certificate has expired ({e}); renew it on {}",
                peer.host
            ),
            C::NotValidYet | C::NotValidYetContext { .. } => format!(
                "the server's certificate is not valid yet ({e}): check the clocks of both \
                 hosts"
            ),
            _ => format!("the server's certificate was not accepted: {e} (CA file {ca})"),
        },
        rustls::Error::AlertReceived(alert) => explain_alert(peer, *alert),
        _ => format!("the TLS handshake with {} failed: {e}", peer.authority()),
    }
}

fn not_valid_for(peer: &Peer<'_>, presented: &str) -> String {
    format!(
        "the server's certificate is not valid for {}{presented} (use the name it was made \
         for in the remote's URL, or make it with `pcapd tls init --host {}`)",
        peer.host, peer.host
    )
}

/// An alert from the server in words. After the server's part of the handshake, the only
/// thing it still judges is the client certificate.
fn explain_alert(peer: &Peer<'_>, alert: AlertDescription) -> String {
    use AlertDescription as A;
    match alert {
        A::CertificateRequired
        | A::BadCertificate
        | A::UnsupportedCertificate
        | A::CertificateRevoked
        | A::CertificateExpired
        | A::CertificateUnknown
        | A::UnknownCA
        | A::AccessDenied
        | A::DecryptError
        | A::HandshakeFailure => format!(
            "the server did not accept the client certificate {} (is it signed by the CA \
             the server trusts, given with --client-ca?)",
            peer.files.cert.display()
        ),
        A::ProtocolVersion => format!(
            "{} does not speak TLS 1.3 (is that pcapd's TLS listener?)",
            peer.authority()
        ),
        A::NoApplicationProtocol => format!(
            "{} does not offer HTTP/2 over TLS (is that pcapd's TLS listener?)",
            peer.authority()
        ),
        other => format!(
            "the TLS connection to {} failed: the server sent the alert {other:?}",
            peer.authority()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn files() -> TlsFiles {
        TlsFiles {
            ca: "/etc/pcap/ca.pem".into(),
            cert: "/etc/pcap/me.pem".into(),
            key: "/etc/pcap/me.key".into(),
        }
    }

    fn explain(e: rustls::Error) -> String {
        let files = files();
        let peer = Peer {
            host: "lab.example",
            port: 2020,
            files: &files,
        };
        explain_rustls(&peer, &e)
    }

    #[test]
    fn server_certificate_failures_name_the_ca_or_the_host() {
        let e = explain(CertificateError::UnknownIssuer.into());
        assert!(
            e.starts_with("the server's certificate is not signed by the CA in /etc/pcap/ca.pem"),
            "{e}"
        );
        let e = explain(CertificateError::BadSignature.into());
        assert!(
            e.contains("not signed by the CA in /etc/pcap/ca.pem"),
            "{e}"
        );
        let e = explain(CertificateError::NotValidForName.into());
        assert!(
            e.starts_with("the server's certificate is not valid for lab.example"),
            "{e}"
        );
        let e = explain(
            CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("lab.example").unwrap(),
                presented: vec!["DnsName(\"other.example\")".into()],
            }
            .into(),
        );
        assert!(e.contains("not valid for lab.example: it is for"), "{e}");
        assert!(explain(CertificateError::Expired.into()).contains("has expired"));
    }

    #[test]
    fn alerts_about_the_client_name_its_certificate() {
        for alert in [
            AlertDescription::CertificateRequired,
            AlertDescription::BadCertificate,
            AlertDescription::UnknownCA,
            AlertDescription::AccessDenied,
        ] {
            let e = explain(rustls::Error::AlertReceived(alert));
            assert_eq!(
                e,
                "the server did not accept the client certificate /etc/pcap/me.pem (is it \
                 signed by the CA the server trusts, given with --client-ca?)"
            );
        }
        let e = explain(rustls::Error::AlertReceived(
            AlertDescription::ProtocolVersion,
        ));
        assert!(e.contains("does not speak TLS 1.3"), "{e}");
    }

    #[test]
    fn statuses_are_searched_for_tls_failures() {
        let files = files();
        // As tonic makes it: the rustls error inside an io::Error as the source.
        let mut s = tonic::Status::unavailable("transport error");
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::UnknownCA),
        );
        s.set_source(Arc::new(io));
        let e = explain_status(&s, "lab.example", 2020, &files).unwrap();
        assert!(
            e.contains("did not accept the client certificate /etc/pcap/me.pem"),
            "{e}"
        );
        // As h2 passes it on: text only.
        let mut s = tonic::Status::unknown("transport error");
        s.set_source(Arc::new(io::Error::new(
            io::ErrorKind::InvalidData,
            "received fatal alert: CertificateRequired",
        )));
        let e = explain_status(&s, "lab.example", 2020, &files).unwrap();
        assert!(e.contains("did not accept the client certificate"), "{e}");
        // A reconnect that failed in the connector.
        let mut s = tonic::Status::unavailable("transport error");
        s.set_source(Arc::new(io::Error::other(Error::Unreachable {
            target: "lab.example:2020".into(),
            message: "connection refused".into(),
        })));
        assert_eq!(
            explain_status(&s, "lab.example", 2020, &files).unwrap(),
            "cannot reach lab.example:2020: connection refused"
        );
        // Not about TLS at all.
        assert_eq!(
            explain_status(&tonic::Status::not_found("no capture web"), "h", 1, &files),
            None
        );
        let mut s = tonic::Status::unknown("h2 protocol error");
        s.set_source(Arc::new(io::Error::from(io::ErrorKind::ConnectionReset)));
        assert_eq!(explain_status(&s, "h", 1, &files), None);
    }

    #[test]
    fn alert_names_are_read_from_text() {
        let text = rustls::Error::AlertReceived(AlertDescription::BadCertificate).to_string();
        assert_eq!(
            alert_in_text(&format!("error: {text}")),
            Some(AlertDescription::BadCertificate)
        );
        assert_eq!(alert_in_text("received fatal alert: Nonsense"), None);
        assert_eq!(alert_in_text("connection reset"), None);
    }
}
