//! The public error model.
//!
//! Every failure the SDK reports is an [`Error`]. Each variant says what happened and, in its
//! documentation, what the app should do about it. The retry logic, and later the session and
//! sync engines, never match on variants to decide whether to try again: they ask
//! [`Error::retry_class`], which classifies each failure once.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

/// What went wrong with a call.
///
/// Cloneable so that a channel can report the same failure in its state and in its events.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call itself is malformed: a URL that does not parse, a header name or value that is not
    /// valid HTTP, a body that cannot be serialized, a configuration that cannot work.
    ///
    /// Fix the call; repeating it will fail the same way.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// Plain `http://` to a host that is not loopback, refused because the client was not built
    /// with [`ClientBuilder::allow_insecure_http`](crate::ClientBuilder::allow_insecure_http).
    /// Also reported when a redirect leads from HTTPS to plain HTTP.
    ///
    /// Use `https://`, or opt in explicitly for a development server.
    #[error("refused plain HTTP to {host}: use https or opt in to insecure HTTP")]
    InsecureTransport {
        /// The host the request or redirect would have gone to.
        host: String,
    },

    /// The app reported that the device has no network, so the request was not attempted.
    ///
    /// Try again once [`Client::set_online`](crate::Client::set_online) reports the network back.
    #[error("the device is offline")]
    Offline,

    /// No complete response arrived within the request timeout.
    ///
    /// Transient: the same request may succeed later.
    #[error("the request timed out")]
    Timeout,

    /// The connection could not be made or broke: DNS failure, refused or reset connection,
    /// TLS handshake failure.
    ///
    /// Usually transient; try again later.
    #[error("connection failed: {0}")]
    Connection(String),

    /// The server answered with a status of 400 or above.
    ///
    /// [`Error::problem`] gives the server's Problem Details (RFC 9457) when it sent them.
    /// 408, 429 and most 5xx statuses are transient; other 4xx statuses mean the request must
    /// change before it can succeed.
    #[error("{}", describe_status(*status, problem.as_deref()))]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The Problem Details body, when the server sent one.
        problem: Option<Box<Problem>>,
        /// How long the server asked the client to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },

    /// The response body is larger than the client's limit; it was not read.
    ///
    /// Raise [`ClientBuilder::max_response_body`](crate::ClientBuilder::max_response_body) if the
    /// resource is legitimately that large.
    #[error("the response body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },

    /// The response body could not be decoded as the requested type (JSON, XML or UTF-8 text).
    ///
    /// The server and the app disagree about the shape of the data; retrying will not help.
    #[error("could not decode the response body: {0}")]
    Decode(String),

    /// No user is signed in, or the server ended the session (it rejected the refresh token).
    ///
    /// Show the sign-in screen. The SDK never reports this for a timeout, a connection failure
    /// or a server error during a refresh: those keep the session and are reported as such.
    #[error("sign-in required")]
    SignInRequired,

    /// The authorization server refused a sign-in step: wrong password (`invalid_grant`), the
    /// user denied access (`access_denied`), the device code expired (`expired_token`), or the
    /// redirect did not match the sign-in in progress (`invalid_state`).
    ///
    /// Tell the user and let them try again.
    #[error("{}", describe_oauth(error, description.as_deref()))]
    OAuth {
        /// The OAuth error code (RFC 6749, section 5.2, and RFC 8628).
        error: String,
        /// The server's human-readable description, if any. Boxed to keep `Error` small.
        description: Option<Box<str>>,
    },

    /// Token refreshes were stopped because there were too many in a short time, which means
    /// the server keeps rejecting fresh tokens. The session is kept.
    ///
    /// Try again after `retry_after`.
    #[error("token refreshes are throttled for {retry_after:?}")]
    RefreshThrottled {
        /// How long until a refresh is allowed again.
        retry_after: Duration,
    },

    /// The request asked for the cache only ([`CachePolicy::CacheOnly`](crate::CachePolicy::CacheOnly)
    /// or `Cache-Control: only-if-cached`) and nothing suitable was stored.
    ///
    /// Show that the data is not available offline.
    #[error("no stored response for this request")]
    NotCached,

    /// The secure token store, or one of the SDK's local databases, could not be read or
    /// written.
    ///
    /// The platform's keychain may be locked or unavailable, or the storage directory full or
    /// unwritable. What the SDK holds in memory (the session, push state) is kept.
    #[error("local storage failed: {0}")]
    Storage(String),

    /// The realtime channel was closed, by the app or for good by the server, so it takes no
    /// more messages.
    ///
    /// Open a new channel if the app still needs one.
    #[error("the channel is closed")]
    ChannelClosed,

    /// A realtime channel's outgoing queue is full and its overflow rule is
    /// [`Overflow::Fail`](crate::realtime::Overflow::Fail): the message was not queued.
    ///
    /// Transient: the queue drains once the channel is connected again. Send later, or choose
    /// another overflow rule.
    #[error("the channel's outgoing queue is full ({capacity} messages)")]
    QueueFull {
        /// How many messages the queue holds.
        capacity: usize,
    },

    /// Something failed inside the SDK that should not have. Please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

/// How a failure may be retried. Asked of every [`Error`] by [`Error::retry_class`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryClass {
    /// Transient: another attempt may succeed as soon as conditions allow (after backoff, or
    /// once the network is back).
    Now,
    /// The server asked for this much time to pass before the next attempt.
    After(Duration),
    /// The same request will fail the same way; do not retry it.
    Never,
}

impl Error {
    /// Classifies this failure for retrying: the one place that decides it.
    pub fn retry_class(&self) -> RetryClass {
        match self {
            Error::Offline | Error::Timeout | Error::Connection(_) | Error::QueueFull { .. } => {
                RetryClass::Now
            }
            Error::Http {
                status,
                retry_after,
                ..
            } => match (*status, retry_after) {
                (429 | 503, Some(delay)) => RetryClass::After(*delay),
                (408 | 429 | 500 | 502 | 503 | 504, _) => RetryClass::Now,
                _ => RetryClass::Never,
            },
            Error::RefreshThrottled { retry_after } => RetryClass::After(*retry_after),
            Error::InvalidInput(_)
            | Error::SignInRequired
            | Error::NotCached
            | Error::OAuth { .. }
            | Error::Storage(_)
            | Error::InsecureTransport { .. }
            | Error::BodyTooLarge { .. }
            | Error::Decode(_)
            | Error::ChannelClosed
            | Error::Internal(_) => RetryClass::Never,
        }
    }

    /// Whether retrying this failure later may succeed.
    pub fn is_transient(&self) -> bool {
        self.retry_class() != RetryClass::Never
    }

    /// The HTTP status, when the server answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's Problem Details, when it sent them with an error status.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Http { problem, .. } => problem.as_deref(),
            _ => None,
        }
    }

    /// Whether the request failed because the app reported the device offline.
    pub fn is_offline(&self) -> bool {
        matches!(self, Error::Offline)
    }

    /// Whether the request failed because it took longer than its timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }
}

/// A Problem Details object (RFC 9457) sent by the server with an error status.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// A URI reference that identifies the problem type; `about:blank` when the server gave none.
    pub problem_type: String,
    /// A short, human-readable summary of the problem type.
    pub title: Option<String>,
    /// The HTTP status code the server generated for this occurrence.
    pub status: Option<u16>,
    /// A human-readable explanation specific to this occurrence.
    pub detail: Option<String>,
    /// A URI reference that identifies this occurrence.
    pub instance: Option<String>,
    /// Any other members the server included, such as validation errors.
    pub extensions: Map<String, Value>,
}

impl Problem {
    /// Reads a Problem Details object from a response body.
    ///
    /// Lenient by design: members of the wrong type are ignored, as RFC 9457 asks of consumers.
    /// Returns `None` when the body is not a JSON object.
    pub fn from_json(body: &[u8]) -> Option<Problem> {
        let Ok(Value::Object(mut members)) = serde_json::from_slice::<Value>(body) else {
            return None;
        };

        let mut take_string = |key: &str| match members.remove(key) {
            Some(Value::String(text)) => Some(text),
            _ => None,
        };
        let problem_type = take_string("type").unwrap_or_else(|| "about:blank".to_owned());
        let title = take_string("title");
        let detail = take_string("detail");
        let instance = take_string("instance");
        let status = match members.remove("status") {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            _ => None,
        };

        Some(Problem {
            problem_type,
            title,
            status,
            detail,
            instance,
            extensions: members,
        })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.title, &self.detail) {
            (Some(title), Some(detail)) => write!(f, "{title}: {detail}"),
            (Some(title), None) => f.write_str(title),
            (None, Some(detail)) => f.write_str(detail),
            (None, None) => f.write_str(&self.problem_type),
        }
    }
}

fn describe_oauth(error: &str, description: Option<&str>) -> String {
    match description {
        Some(description) => format!("OAuth error {error}: {description}"),
        None => format!("OAuth error {error}"),
    }
}

fn describe_status(status: u16, problem: Option<&Problem>) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("");

    match problem {
        Some(problem) => format!("HTTP {status} {reason}: {problem}"),
        None => format!("HTTP {status} {reason}").trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, retry_after: Option<Duration>) -> Error {
        Error::Http {
            status,
            problem: None,
            retry_after,
        }
    }

    #[test]
    fn test_error_is_send_sync_and_small() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();

        // 48: the OAuth variant's two strings are the largest payload.
        assert!(
            std::mem::size_of::<Error>() <= 48,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn test_transport_failures_are_retried_now() {
        assert_eq!(Error::Timeout.retry_class(), RetryClass::Now);
        assert_eq!(
            Error::Connection("reset".into()).retry_class(),
            RetryClass::Now
        );
        assert_eq!(Error::Offline.retry_class(), RetryClass::Now);
    }

    #[test]
    fn test_retry_after_is_honoured_for_429_and_503_only() {
        let wait = Some(Duration::from_secs(2));

        assert_eq!(
            http(503, wait).retry_class(),
            RetryClass::After(Duration::from_secs(2))
        );
        assert_eq!(
            http(429, wait).retry_class(),
            RetryClass::After(Duration::from_secs(2))
        );
        assert_eq!(http(502, wait).retry_class(), RetryClass::Now);
        assert_eq!(http(429, None).retry_class(), RetryClass::Now);
    }

    #[test]
    fn test_client_errors_are_never_retried() {
        for status in [400, 401, 403, 404, 409, 410, 422] {
            assert_eq!(
                http(status, None).retry_class(),
                RetryClass::Never,
                "{status}"
            );
        }
        assert!(!Error::Decode("x".into()).is_transient());
        assert!(!Error::BodyTooLarge { limit: 1 }.is_transient());
    }

    #[test]
    fn test_a_full_queue_is_transient_and_a_closed_channel_is_not() {
        assert_eq!(
            Error::QueueFull { capacity: 8 }.retry_class(),
            RetryClass::Now
        );
        assert_eq!(Error::ChannelClosed.retry_class(), RetryClass::Never);
    }

    #[test]
    fn test_problem_parses_standard_and_extension_members() {
        let body = br#"{"type":"/problems/validation","title":"Invalid todo","status":422,
            "detail":"title is empty","instance":"/todos","errors":[{"field":"title"}]}"#;

        let problem = Problem::from_json(body).unwrap();

        assert_eq!(problem.problem_type, "/problems/validation");
        assert_eq!(problem.title.as_deref(), Some("Invalid todo"));
        assert_eq!(problem.status, Some(422));
        assert_eq!(problem.detail.as_deref(), Some("title is empty"));
        assert_eq!(problem.instance.as_deref(), Some("/todos"));
        assert_eq!(problem.extensions["errors"][0]["field"], "title");
    }

    #[test]
    fn test_problem_ignores_members_of_the_wrong_type() {
        let problem = Problem::from_json(br#"{"type":7,"title":["x"],"status":"500"}"#).unwrap();

        assert_eq!(problem.problem_type, "about:blank");
        assert_eq!(problem.title, None);
        assert_eq!(problem.status, None);
    }

    #[test]
    fn test_problem_rejects_non_objects() {
        assert!(Problem::from_json(b"[1,2]").is_none());
        assert!(Problem::from_json(b"<html>").is_none());
        assert!(Problem::from_json(b"").is_none());
    }

    #[test]
    fn test_http_error_message_includes_reason_and_problem() {
        let error = Error::Http {
            status: 404,
            problem: Problem::from_json(br#"{"title":"Not Found","detail":"no todo 9"}"#)
                .map(Box::new),
            retry_after: None,
        };

        assert_eq!(
            error.to_string(),
            "HTTP 404 Not Found: Not Found: no todo 9"
        );
        assert_eq!(http(599, None).to_string(), "HTTP 599");
    }
}
