//! Errors of the decoding library: only what a caller can get wrong (rules it was given).
//! Bad packets are never errors: they become notes on roundtrips and counters.

/// What was wrong with what the caller asked for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("unknown protocol {0:?} in --proto/--decode: use http, dns, http2, grpc or tls")]
    UnknownProto(String),
    #[error("bad port {port:?} in {rule:?}: ports are numbers from 1 to 65535, separated by commas (e.g. http:80,8080)")]
    BadPort { rule: String, port: String },
    #[error(
        "{0:?}... names more than 64 ports: give at most 64 per rule, or none to decode every port"
    )]
    TooManyPorts(String),
    #[error("{0:?} names no ports after ':': write e.g. http:80,8080, or just http for any port")]
    NoPorts(String),
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
