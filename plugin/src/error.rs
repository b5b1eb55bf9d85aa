//! The error every exported call can return (WIT `types.error`).

use std::fmt;

use crate::host::HostError;

/// Why an exported call failed, in terms a DAM can show to a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// `provider.configure` has not been called yet.
    NotConfigured,
    /// The DAM user has no Frame.io connection.
    NotConnected(String),
    /// The user's grant is gone; they must connect again.
    ReconnectRequired(String),
    /// An argument was refused.
    InvalidInput(String),
    /// Something referenced does not exist.
    NotFound(String),
    /// The request clashes with existing state; nothing changed.
    Conflict(String),
    /// Frame.io answered with an error.
    Frameio(FrameioError),
    /// A host import failed.
    Host(String),
    /// Frame.io's rate limit for `route` is spent for `wait_ms` more: the call was
    /// not made. Not a failure: the step runs again once the wait is over.
    Paced { wait_ms: u32, route: String },
}

/// An error answer from Frame.io, kept structured so callers can tell passing
/// failures (429, 5xx) from final ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameioError {
    /// HTTP status; 0 when no response arrived at all.
    pub status: u16,
    /// Frame.io's message, or what went wrong on the way.
    pub message: String,
    /// How long Frame.io asked us to wait before trying again, when it said.
    pub retry_after_ms: Option<u32>,
}

impl FrameioError {
    /// An error with no retry hint.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        FrameioError { status, message: message.into(), retry_after_ms: None }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.status == 0 || self.status == 429 || self.status >= 500
    }
}

impl Error {
    /// How long Frame.io asked to wait, when this is its answer and it said.
    pub fn retry_after_ms(&self) -> Option<u32> {
        match self {
            Error::Frameio(e) => e.retry_after_ms,
            Error::Paced { wait_ms, .. } => Some(*wait_ms),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (a job step retries these).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Frameio(e) => e.is_transient(),
            Error::Host(_) | Error::Paced { .. } => true,
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotConfigured => f.write_str("the Frame.io provider is not configured"),
            Error::NotConnected(user) => write!(f, "{user} has not connected a Frame.io account"),
            Error::ReconnectRequired(why) => write!(f, "the Frame.io connection must be renewed: {why}"),
            Error::InvalidInput(why) => write!(f, "{why}"),
            Error::NotFound(what) => write!(f, "{what} was not found"),
            Error::Conflict(why) => write!(f, "{why}"),
            Error::Frameio(e) if e.status == 0 => write!(f, "Frame.io could not be reached: {}", e.message),
            Error::Frameio(e) => write!(f, "Frame.io answered {}: {}", e.status, e.message),
            Error::Host(why) => write!(f, "host error: {why}"),
            Error::Paced { wait_ms, route } => write!(f, "waiting {wait_ms} ms for Frame.io's rate limit on {route}"),
        }
    }
}

impl From<HostError> for Error {
    fn from(e: HostError) -> Self {
        match e {
            HostError::NotFound(what) => Error::NotFound(what),
            // A refusal (a denied host, a bad key, an incomplete blob) will not pass
            // by retrying: report it as final.
            HostError::Refused(why) => Error::InvalidInput(format!("the host refused: {why}")),
            other => Error::Host(other.to_string()),
        }
    }
}

/// Result of a connector operation.
pub type Result<T> = std::result::Result<T, Error>;
