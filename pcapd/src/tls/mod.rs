//! TLS for the remote listener: the `pcapd tls` certificate helper, and the server
//! configuration (TLS 1.3 only, client certificates required).

pub mod certs;
pub mod server;
