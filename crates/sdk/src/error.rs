//! The error type every handler returns; the HTTP layer maps it to a status code in one place.

/// A handler's failure, classified by what the client should be told.
///
/// `Internal` carries detail for the server log only: the HTTP layer answers a generic
/// message, because internal errors may contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or invalid (400).
    #[error("{0}")]
    InvalidRequest(String),
    /// The token lacks the capability, or there is no valid token (403).
    #[error("permission denied")]
    PermissionDenied,
    /// The token is unknown, expired or revoked (403).
    #[error("invalid token")]
    InvalidToken,
    /// No route serves this path (404).
    #[error("unsupported path")]
    UnsupportedPath,
    /// Nothing at this path (404 with an empty error list).
    #[error("not found")]
    NotFound,
    /// The route exists but not for this operation (405).
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// A conflicting object already exists (409).
    #[error("{0}")]
    Conflict(String),
    /// A quota refused the request (429).
    #[error("{0}")]
    QuotaExceeded(String),
    /// The server is sealed (503).
    #[error("Vault is sealed")]
    Sealed,
    /// A third-party system failed (502).
    #[error("{0}")]
    Upstream(String),
    /// Anything else (500); the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// An explicit status with a client-safe message.
    #[error("{message}")]
    Coded { status: u16, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidRequest(message.into())
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal(detail.to_string())
    }
}
