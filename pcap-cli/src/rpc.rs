//! Turning a failed call into a message for people. pcapd writes its error messages to be
//! read as they are; failures of the connection itself carry a source error and get a
//! sentence of their own instead of transport internals. Over TLS, a client certificate
//! the server refuses is only told on the first call, so that is looked for first.

use std::error::Error as _;

use anyhow::anyhow;
use pcap_core::connect::{explain_status, EndpointUrl};
use tonic::{Code, Status};

use crate::target::Endpoint;

/// The error to report for a failed call to `endpoint` or a stream from it that broke off,
/// as a function for `map_err`.
pub fn status_error(endpoint: &Endpoint) -> impl Fn(Status) -> anyhow::Error + '_ {
    move |status| anyhow!(describe(&status, endpoint))
}

fn describe(status: &Status, endpoint: &Endpoint) -> String {
    if let Endpoint::Remote(remote) = endpoint {
        if let (EndpointUrl::Https { host, port }, Some(files)) = (&remote.url, &remote.tls) {
            if let Some(told) = explain_status(status, host, *port, files) {
                return format!("remote {}: {told}", remote.name);
            }
        }
    }
    if connection_lost(status) {
        return match endpoint {
            Endpoint::Unix(_) => "the connection to pcapd was lost: it may have stopped or \
                                  restarted (check `systemctl status pcapd`)"
                .to_owned(),
            Endpoint::Remote(r) => format!(
                "the connection to pcapd on remote {} ({}) was lost: it may have stopped or \
                 restarted, or the network failed",
                r.name, r.url
            ),
        };
    }
    let message = status.message().trim();
    if !message.is_empty() {
        return message.to_owned();
    }
    match status.code() {
        Code::Unimplemented => {
            "pcapd does not know this call: it is older than this pcap (compare `pcap version`)"
                .to_owned()
        }
        code => format!("pcapd answered: {}", code.description().to_lowercase()),
    }
}

/// Whether the status was made on this side because the connection failed, rather than
/// sent by the daemon (those carry no source error).
fn connection_lost(status: &Status) -> bool {
    if status.source().is_some() {
        return true;
    }
    // Made by tonic when a stream's body ends without its final status.
    matches!(status.code(), Code::Internal | Code::Unknown)
        && (status.message().starts_with("Unexpected EOF")
            || status.message().contains("grpc-status"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn local() -> Endpoint {
        Endpoint::Unix("/run/pcapd/pcapd.sock".into())
    }

    fn lab() -> Endpoint {
        Endpoint::Remote(crate::remotes::sample_lab())
    }

    /// What tonic makes of a client certificate refused at the first call, as seen over
    /// hyper and h2: the alert survives only as text.
    fn refused_certificate() -> Status {
        let mut s = Status::unknown("transport error");
        s.set_source(Arc::new(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "received fatal alert: UnknownCA",
        )));
        s
    }

    #[test]
    fn refused_client_certificates_are_named_for_remotes() {
        assert_eq!(
            describe(&refused_certificate(), &lab()),
            "remote lab: the server did not accept the client certificate /pki/me.pem (is it \
             signed by the CA the server trusts, given with --client-ca?)"
        );
        let lost = describe(&Status::internal("Unexpected EOF decoding stream."), &lab());
        assert!(
            lost.starts_with("the connection to pcapd on remote lab (https://lab.example:2020)"),
            "{lost}"
        );
        let s = Status::not_found("no capture with id or alias \"web\"");
        assert_eq!(describe(&s, &lab()), "no capture with id or alias \"web\"");
    }

    #[test]
    fn daemon_messages_pass_through() {
        let s = Status::not_found("no capture with id or alias \"web\"");
        assert_eq!(
            describe(&s, &local()),
            "no capture with id or alias \"web\""
        );
    }

    #[test]
    fn transport_failures_say_the_connection_was_lost() {
        let mut s = Status::unknown("h2 protocol error: error reading a body from connection");
        s.set_source(Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(describe(&s, &local()).starts_with("the connection to pcapd was lost"));
        let eof = Status::internal("Unexpected EOF decoding stream.");
        assert!(describe(&eof, &local()).starts_with("the connection to pcapd was lost"));
    }

    #[test]
    fn empty_messages_are_explained_by_code() {
        assert!(describe(&Status::unimplemented(""), &local()).contains("older than this pcap"));
        assert_eq!(
            describe(&Status::new(Code::Aborted, ""), &local()),
            "pcapd answered: the operation was aborted"
        );
    }
}
