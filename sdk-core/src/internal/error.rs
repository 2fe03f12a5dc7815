//! The internal error tier.
//!
//! Code inside the crate returns [`Failure`], which converts from the errors of the libraries
//! underneath with `?`. [`Failure::into_public`] is the one place that decides which public
//! [`Error`] each of them becomes, and strips anything secret on the way.

use std::time::Duration;

use crate::error::{Error, Problem};
use crate::internal::redact;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
    #[error(transparent)]
    Public(#[from] Error),
    #[error(transparent)]
    Url(#[from] url::ParseError),
    #[error(transparent)]
    HeaderName(#[from] http::header::InvalidHeaderName),
    #[error(transparent)]
    HeaderValue(#[from] http::header::InvalidHeaderValue),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Tls(#[from] rustls::Error),
    #[error("could not serialize the request body: {0}")]
    Encode(serde_json::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("timed out")]
    Timeout,
    #[error("offline")]
    Offline,
    #[error("plain http to {host}")]
    Insecure { host: String },
    #[error("body larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("status {status}")]
    Status {
        status: u16,
        problem: Option<Box<Problem>>,
        retry_after: Option<Duration>,
    },
}

/// Raised by the redirect policy when a redirect would downgrade to plain HTTP.
#[derive(Debug, thiserror::Error)]
#[error("redirect to plain http at {host}")]
pub(crate) struct InsecureRedirect {
    pub(crate) host: String,
}

impl Failure {
    pub(crate) fn into_public(self) -> Error {
        match self {
            Failure::Transport(error) => from_reqwest(error),
            Failure::Public(error) => error,
            Failure::Url(error) => Error::InvalidInput(format!("invalid URL: {error}")),
            Failure::HeaderName(error) => Error::InvalidInput(format!("header name: {error}")),
            Failure::HeaderValue(error) => Error::InvalidInput(format!("header value: {error}")),
            Failure::Io(error) => Error::InvalidInput(format!("storage directory: {error}")),
            Failure::Tls(error) => Error::InvalidInput(format!("TLS configuration: {error}")),
            Failure::Encode(error) => Error::InvalidInput(format!("request body: {error}")),
            Failure::Invalid(message) => Error::InvalidInput(message),
            Failure::Timeout => Error::Timeout,
            Failure::Offline => Error::Offline,
            Failure::Insecure { host } => Error::InsecureTransport { host },
            Failure::BodyTooLarge { limit } => Error::BodyTooLarge { limit },
            Failure::Status {
                status,
                problem,
                retry_after,
            } => Error::Http {
                status,
                problem,
                retry_after,
            },
        }
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Error {
        failure.into_public()
    }
}

fn from_reqwest(error: reqwest::Error) -> Error {
    // reqwest puts the full URL, query string included, into its messages.
    let error = error.without_url();

    if let Some(redirect) = find_cause::<InsecureRedirect>(&error) {
        return Error::InsecureTransport {
            host: redirect.host.clone(),
        };
    }
    if error.is_timeout() {
        return Error::Timeout;
    }
    if error.is_builder() {
        return Error::InvalidInput(redact::error_chain(&error));
    }
    if error.is_decode() {
        return Error::Decode(redact::error_chain(&error));
    }
    Error::Connection(redact::error_chain(&error))
}

fn find_cause<T: std::error::Error + 'static>(error: &dyn std::error::Error) -> Option<&T> {
    let mut current = error.source();
    while let Some(cause) = current {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
        }
        current = cause.source();
    }
    None
}
