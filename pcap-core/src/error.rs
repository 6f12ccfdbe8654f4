//! Errors of the shared library.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong in parsing user input, reading spool files or reaching a daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// User input that does not parse; the message says what was expected.
    #[error("{0}")]
    Invalid(String),
    /// A request field missing or out of range.
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// The daemon's socket does not exist or nobody listens on it.
    #[error(
        "pcapd is not running at {}: start it with `sudo systemctl start pcapd` \
         (or `sudo pcapd --socket {}`), or point to another socket with --socket or $PCAP_SOCKET",
        path.display(), path.display()
    )]
    NotRunning { path: PathBuf },
    /// The caller may not open the daemon's socket.
    #[error(
        "permission denied on {}: members of group `{group}` may use pcapd; join it with \
         `sudo usermod -aG {group} $USER` and log in again",
        path.display()
    )]
    PermissionDenied { path: PathBuf, group: String },
    /// A remote daemon's host or port could not be reached (refused, no route, no such name).
    #[error("cannot reach {target}: {message}")]
    Unreachable { target: String, message: String },
    /// A TLS connection failed; the message names the certificate file or host at fault.
    #[error("{message}")]
    Tls { message: String },
    /// Any other failure to connect.
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
