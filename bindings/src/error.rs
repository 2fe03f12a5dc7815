//! The error Kotlin sees as `RoundtripException` and Swift as `RoundtripError`.
//!
//! Every case carries `reason`, the full human-readable description (the field is not called
//! `message` because Kotlin exceptions already have one; Kotlin's `message` includes `reason`).

use crate::types::Problem;

/// What went wrong with a call. Each case matches one of the Rust `roundtrip::Error` variants.
#[derive(uniffi::Error, Clone, Debug, thiserror::Error)]
pub enum RoundtripError {
    /// The call is malformed (URL, header, configuration); fix it rather than retry.
    #[error("{reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// Plain HTTP to a host that is not loopback, without opting in; use HTTPS.
    #[error("{reason}")]
    InsecureTransport {
        /// Which host was refused.
        reason: String,
    },
    /// The app reported no network; try again when it is back.
    #[error("{reason}")]
    Offline {
        /// A description.
        reason: String,
    },
    /// No complete response in time; transient.
    #[error("{reason}")]
    Timeout {
        /// A description.
        reason: String,
    },
    /// The connection failed or broke; usually transient.
    #[error("{reason}")]
    Connection {
        /// What failed, without URLs or credentials.
        reason: String,
    },
    /// The server answered with a status of 400 or above.
    #[error("{reason}")]
    Http {
        /// Status, reason and the problem's title and detail.
        reason: String,
        /// The HTTP status code.
        status: u16,
        /// The Problem Details body, when sent.
        problem: Option<Problem>,
        /// How long the server asked to wait, when it said.
        retry_after_ms: Option<u64>,
    },
    /// The response body exceeded the configured limit.
    #[error("{reason}")]
    BodyTooLarge {
        /// A description.
        reason: String,
        /// The limit, in bytes.
        limit_bytes: u64,
    },
    /// The body could not be decoded.
    #[error("{reason}")]
    Decode {
        /// What did not decode.
        reason: String,
    },
    /// No user is signed in, or the server ended the session; show sign-in.
    #[error("{reason}")]
    SignInRequired {
        /// A description.
        reason: String,
    },
    /// The authorization server refused a sign-in step (wrong password, access denied...).
    #[error("{reason}")]
    OAuth {
        /// A description.
        reason: String,
        /// The OAuth error code, such as `invalid_grant`.
        error: String,
        /// The server's description, if any.
        description: Option<String>,
    },
    /// Token refreshes are throttled after too many in a short time; the session is kept.
    #[error("{reason}")]
    RefreshThrottled {
        /// A description.
        reason: String,
        /// How long until a refresh is allowed.
        retry_after_ms: u64,
    },
    /// Only the cache was to be used and it holds no suitable response.
    #[error("{reason}")]
    NotCached {
        /// A description.
        reason: String,
    },
    /// The token store failed.
    #[error("{reason}")]
    Storage {
        /// A description.
        reason: String,
    },
    /// The realtime channel was closed and takes no more messages.
    #[error("{reason}")]
    ChannelClosed {
        /// A description.
        reason: String,
    },
    /// The channel's outgoing queue is full; send later or choose another overflow rule.
    #[error("{reason}")]
    QueueFull {
        /// A description.
        reason: String,
        /// How many messages the queue holds.
        capacity: u64,
    },
    /// The operation was cancelled before it finished.
    #[error("{reason}")]
    Cancelled {
        /// A description.
        reason: String,
    },
    /// A failure inside the SDK that should not happen; please report it.
    #[error("{reason}")]
    Internal {
        /// A description.
        reason: String,
    },
}

impl From<roundtrip::Error> for RoundtripError {
    fn from(error: roundtrip::Error) -> Self {
        let reason = error.to_string();
        match error {
            roundtrip::Error::InvalidInput(_) => RoundtripError::InvalidInput { reason },
            roundtrip::Error::InsecureTransport { .. } => {
                RoundtripError::InsecureTransport { reason }
            }
            roundtrip::Error::Offline => RoundtripError::Offline { reason },
            roundtrip::Error::Timeout => RoundtripError::Timeout { reason },
            roundtrip::Error::Connection(_) => RoundtripError::Connection { reason },
            roundtrip::Error::Http {
                status,
                problem,
                retry_after,
            } => RoundtripError::Http {
                reason,
                status,
                problem: problem.as_deref().map(Problem::from),
                retry_after_ms: retry_after.map(|wait| wait.as_millis() as u64),
            },
            roundtrip::Error::BodyTooLarge { limit } => RoundtripError::BodyTooLarge {
                reason,
                limit_bytes: limit,
            },
            roundtrip::Error::Decode(_) => RoundtripError::Decode { reason },
            roundtrip::Error::SignInRequired => RoundtripError::SignInRequired { reason },
            roundtrip::Error::OAuth { error, description } => RoundtripError::OAuth {
                reason,
                error,
                description: description.map(String::from),
            },
            roundtrip::Error::RefreshThrottled { retry_after } => {
                RoundtripError::RefreshThrottled {
                    reason,
                    retry_after_ms: retry_after.as_millis() as u64,
                }
            }
            roundtrip::Error::Storage(_) => RoundtripError::Storage { reason },
            roundtrip::Error::NotCached => RoundtripError::NotCached { reason },
            roundtrip::Error::ChannelClosed => RoundtripError::ChannelClosed { reason },
            roundtrip::Error::QueueFull { capacity } => RoundtripError::QueueFull {
                reason,
                capacity: capacity as u64,
            },
            _ => RoundtripError::Internal { reason },
        }
    }
}
