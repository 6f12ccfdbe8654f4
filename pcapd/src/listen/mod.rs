//! Where the API is served: the local UNIX socket (remote TLS comes later).

pub mod unix;
