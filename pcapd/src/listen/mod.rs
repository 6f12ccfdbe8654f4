//! Where the API is served: the local UNIX socket, and with --listen a TCP port over
//! mutual TLS.

pub mod authority;
pub mod limit;
pub mod tls;
pub mod unix;
