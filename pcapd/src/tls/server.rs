//! The server side of mutual TLS.
