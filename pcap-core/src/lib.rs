//! Shared library of `pcapd` and `pcap`: the generated API types, domain types and their
//! conversions, parsers for what users type (selectors, sizes, times), the pcap savefile
//! and spool segment formats, and the client connection to a daemon.

pub mod api;
pub mod connect;
pub mod convert;
pub mod domain;
pub mod error;
pub mod limits;
pub mod parse;
pub mod savefile;
pub mod segment;
pub mod target;

pub use error::{Error, Result};

/// Default path of the daemon's UNIX socket.
pub const DEFAULT_SOCKET: &str = "/run/pcapd/pcapd.sock";
/// Default TCP port of the daemon's TLS listener.
pub const DEFAULT_TLS_PORT: u16 = 2020;
/// Default bytes kept of each packet (libpcap's own default, and the most it keeps).
pub const DEFAULT_SNAPLEN: u32 = limits::MAX_SNAPLEN;
