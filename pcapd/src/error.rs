//! The daemon's errors, and the one place where they become gRPC status codes.

/// Result with the daemon's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything a daemon operation can fail with. Messages are written for the person at the
/// other end of the CLI: what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No capture has this id or alias.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or names something impossible.
    #[error("{0}")]
    Invalid(String),
    /// The name is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The capture is not in a state that allows this.
    #[error("{0}")]
    Precondition(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A limit was reached or the daemon is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// A configuration problem found at start-up or on reload.
    #[error("{0}")]
    Config(String),
    /// The registry database failed.
    #[error("registry database: {0}")]
    Store(String),
    /// Something in pcapd failed that the caller can do nothing about (a task serving
    /// the request ended abnormally).
    #[error("{0}")]
    Internal(String),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<pcap_core::Error> for Error {
    fn from(e: pcap_core::Error) -> Self {
        match e {
            pcap_core::Error::Io { path, source } => Error::Io { path, source },
            other => Error::Invalid(other.to_string()),
        }
    }
}

macro_rules! store_error {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Store(e.to_string())
            }
        }
    )*};
}
store_error!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    serde_json::Error
);

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        use tonic::Code;
        let code = match &e {
            Error::NotFound(_) => Code::NotFound,
            Error::Invalid(_) => Code::InvalidArgument,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::Precondition(_) => Code::FailedPrecondition,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Config(_) | Error::Store(_) | Error::Internal(_) | Error::Io { .. } => {
                Code::Internal
            }
        };
        tonic::Status::new(code, e.to_string())
    }
}
