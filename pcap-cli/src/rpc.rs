//! Turning a failed call into a message for people. pcapd writes its error messages to be
//! read as they are; failures of the connection itself carry a source error and get a
//! sentence of their own instead of transport internals.

use std::error::Error as _;

use anyhow::anyhow;
use tonic::{Code, Status};

/// The error to report for a failed call or a stream that broke off.
pub fn status_error(status: Status) -> anyhow::Error {
    anyhow!(describe(&status))
}

fn describe(status: &Status) -> String {
    if connection_lost(status) {
        return "the connection to pcapd was lost: it may have stopped or restarted \
                (check `systemctl status pcapd`)"
            .to_owned();
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

    #[test]
    fn daemon_messages_pass_through() {
        let s = Status::not_found("no capture with id or alias \"web\"");
        assert_eq!(describe(&s), "no capture with id or alias \"web\"");
    }

    #[test]
    fn transport_failures_say_the_connection_was_lost() {
        let mut s = Status::unknown("h2 protocol error: error reading a body from connection");
        s.set_source(Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(describe(&s).starts_with("the connection to pcapd was lost"));
        let eof = Status::internal("Unexpected EOF decoding stream.");
        assert!(describe(&eof).starts_with("the connection to pcapd was lost"));
    }

    #[test]
    fn empty_messages_are_explained_by_code() {
        assert!(describe(&Status::unimplemented("")).contains("older than this pcap"));
        assert_eq!(
            describe(&Status::new(Code::Aborted, "")),
            "pcapd answered: the operation was aborted"
        );
    }
}
