//! Roundtrip decoding as a library without I/O: packets in, roundtrips out.
//!
//! A [`Decoder`] takes packets of one capture or file in order ([`Packet`]: link type,
//! timestamp, bytes, sequence number), reassembles IP fragments and each TCP direction,
//! recognises the application protocol by content, and hands back [`Roundtrip`]s: an HTTP
//! request with its response, a DNS query with its answer. Every buffer is bounded
//! ([`DecodeConfig`]); a flow that hits a bound says so in its roundtrips' notes and decoding
//! goes on with the others. Nothing here reads files, sockets or clocks.
#![forbid(unsafe_code)]

mod connection;
pub mod decoder;
mod defrag;
mod dispatch;
pub mod dns;
pub mod error;
mod flow;
pub mod http1;
mod ip;
mod link;
#[cfg(test)]
mod pipeline_tests;
pub mod roundtrip;
pub mod rules;
pub mod stream;
mod tcp;
#[cfg(test)]
mod testing;
mod tracker;
mod udp;

pub use decoder::{DecodeConfig, DecodeStats, Decoder, Packet};
pub use error::{Error, Result};
pub use roundtrip::{
    DnsAnswer, DnsExchange, GrpcCall, Header, Http2Exchange, HttpExchange, Proto, Roundtrip,
};
pub use rules::ProtoRule;
