//! Error responses of the token-style endpoints (RFC 6749 5.2, RFC 8628 3.5).
//!
//! These endpoints answer errors with `{"error", "error_description"}` rather
//! than a problem body, because that is what OAuth clients parse. Failures
//! inside the server are still 500 problems.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::DbError;
use crate::problem::Problem;

/// An `error` code of RFC 6749 5.2 or RFC 8628 3.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    InvalidScope,
    AuthorizationPending,
    SlowDown,
    AccessDenied,
    ExpiredToken,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
        }
    }
}

/// A failed token-endpoint request.
#[derive(Debug)]
pub(crate) enum OAuthError {
    /// An error the client is told about in OAuth terms.
    Protocol {
        code: ErrorCode,
        description: String,
    },

    /// The server failed; answered with a 500 problem.
    Server(Problem),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl OAuthError {
    /// An error with this code and description.
    pub(crate) fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self::Protocol {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request`: a parameter is missing, repeated or malformed.
    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_grant`: the code, credentials or refresh token are not good.
    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// `invalid_client` for a missing or unknown `client_id`.
    pub(crate) fn unknown_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "the client is not registered")
    }

    /// Logs a database failure and turns it into a 500 problem.
    pub(crate) fn database(err: DbError, instance: &str) -> Self {
        Self::Server(err.into_problem(instance))
    }

    /// The OAuth error code, if this is a protocol error.
    pub(crate) fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Protocol { code, .. } => Some(*code),
            Self::Server(_) => None,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (code, description) = match self {
            Self::Protocol { code, description } => (code, description),
            Self::Server(problem) => return problem.into_response(),
        };

        // RFC 6749 5.2: a failed client authentication is a 401 with a challenge
        // for the scheme the client could have used.
        let status = match code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = ErrorBody {
            error: code.as_str(),
            error_description: &description,
        };
        let mut response = (status, Json(body)).into_response();

        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if code == ErrorCode::InvalidClient {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"roundtrip\""),
            );
        }

        response
    }
}
