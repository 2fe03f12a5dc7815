//! Idempotency keys: a write carrying a key is applied at most once.
//!
//! The flow of one keyed write, all inside a single SQLite transaction:
//!
//! 1. look the key up;
//! 2. if it is known and the stored fingerprint matches, return the stored
//!    response again, marked `Idempotency-Replayed: true`, without writing;
//! 3. if it is known with another fingerprint, refuse with
//!    `/problems/idempotency-key-reused`;
//! 4. otherwise apply the write and, when the response is not a 5xx, store it
//!    under the key before committing.
//!
//! The fingerprint is a SHA-256 of the method, the path and the body bytes.
//! Because the database has one connection behind one lock, two requests with
//! the same key are handled one after the other, never interleaved.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::debug;

use crate::db::{Db, DbError};
use crate::problem::Problem;

/// The request header that carries the key.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The response header that marks a replayed response.
pub(crate) const IDEMPOTENCY_REPLAYED: &str = "idempotency-replayed";

const MAX_KEY_LEN: usize = 255;

/// A complete response in the form that is stored under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The status code.
    pub status: StatusCode,

    /// The `Content-Type` header, if the reply has a body.
    pub content_type: Option<String>,

    /// The `Location` header, for replies that point at a created resource.
    pub location: Option<String>,

    /// The body bytes.
    pub body: Bytes,
}

impl Reply {
    /// A reply with a JSON body.
    pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Self {
        let body = serde_json::to_vec(value).expect("plain data always serializes");

        Self {
            status,
            content_type: Some("application/json".to_owned()),
            location: None,
            body: body.into(),
        }
    }

    /// A reply without a body.
    pub(crate) fn empty(status: StatusCode) -> Self {
        Self {
            status,
            content_type: None,
            location: None,
            body: Bytes::new(),
        }
    }

    /// Adds a `Location` header.
    pub(crate) fn with_location(mut self, location: String) -> Self {
        self.location = Some(location);
        self
    }

    fn into_response(self, replayed: bool) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();

        if let Some(value) = self
            .content_type
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            headers.insert(header::CONTENT_TYPE, value);
        }
        if let Some(value) = self.location.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(header::LOCATION, value);
        }
        if replayed {
            headers.insert(IDEMPOTENCY_REPLAYED, HeaderValue::from_static("true"));
        }

        response
    }
}

impl From<Problem> for Reply {
    fn from(problem: Problem) -> Self {
        problem.into_reply()
    }
}

/// What happened to one write.
enum Outcome {
    Applied(Reply),
    Replayed(Reply),
    KeyReused,
}

/// Applies `write` at most once per idempotency key and returns its response.
///
/// `write` runs inside the transaction that also stores the response, and gets
/// the request body; it returns the reply for the client, problems included.
pub(crate) async fn apply<F>(
    db: &Db,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
    write: F,
) -> Response
where
    F: FnOnce(&Transaction<'_>, &[u8]) -> Result<Reply, DbError> + Send + 'static,
{
    let key = match key_from_headers(headers, path) {
        Ok(key) => key,
        Err(problem) => return problem.into_response(),
    };

    let fingerprint = fingerprint(method, path, &body);
    let keyed = key.clone();
    let outcome = db
        .run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;

            if let Some(key) = &keyed
                && let Some((stored_fingerprint, reply)) = lookup(&tx, key)?
            {
                return Ok(if stored_fingerprint == fingerprint {
                    Outcome::Replayed(reply)
                } else {
                    Outcome::KeyReused
                });
            }

            let reply = write(&tx, &body)?;

            if let Some(key) = &keyed
                && !reply.status.is_server_error()
            {
                store(&tx, key, &fingerprint, &reply)?;
            }

            tx.commit()?;
            Ok(Outcome::Applied(reply))
        })
        .await;

    match outcome {
        Ok(Outcome::Applied(reply)) => reply.into_response(false),
        Ok(Outcome::Replayed(reply)) => {
            debug!(key = key.as_deref(), path, "replaying stored response");
            reply.into_response(true)
        }
        Ok(Outcome::KeyReused) => {
            debug!(key = key.as_deref(), path, "idempotency key reused");
            Problem::idempotency_key_reused(path).into_response()
        }
        Err(error) => error.into_problem(path).into_response(),
    }
}

/// Reads and checks the `Idempotency-Key` header: 1 to 255 visible ASCII characters.
fn key_from_headers(headers: &HeaderMap, instance: &str) -> Result<Option<String>, Problem> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };

    if values.next().is_some() {
        return Err(Problem::invalid_idempotency_key(
            instance,
            "send a single Idempotency-Key",
        ));
    }

    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN {
        return Err(Problem::invalid_idempotency_key(
            instance,
            format!("the key must be 1 to {MAX_KEY_LEN} characters long"),
        ));
    }
    if !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(Problem::invalid_idempotency_key(
            instance,
            "the key must contain only visible ASCII characters",
        ));
    }

    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// Hashes what makes two requests "the same": method, path and body bytes.
fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);

    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn lookup(tx: &Transaction<'_>, key: &str) -> Result<Option<(String, Reply)>, DbError> {
    let row = tx
        .query_row(
            "SELECT fingerprint, status, content_type, location, body
             FROM idempotency_keys WHERE key = ?1",
            [key],
            |row| {
                let fingerprint: String = row.get(0)?;
                let status: u16 = row.get(1)?;
                let content_type: Option<String> = row.get(2)?;
                let location: Option<String> = row.get(3)?;
                let body: Vec<u8> = row.get(4)?;
                Ok((fingerprint, status, content_type, location, body))
            },
        )
        .optional()?;

    Ok(
        row.map(|(fingerprint, status, content_type, location, body)| {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let reply = Reply {
                status,
                content_type,
                location,
                body: body.into(),
            };
            (fingerprint, reply)
        }),
    )
}

fn store(tx: &Transaction<'_>, key: &str, fingerprint: &str, reply: &Reply) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO idempotency_keys (key, fingerprint, status, content_type, location, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            key,
            fingerprint,
            reply.status.as_u16(),
            reply.content_type,
            reply.location,
            &reply.body[..],
        ],
    )?;

    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_with_key(key: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(key).unwrap());
        headers
    }

    #[test]
    fn accepts_visible_ascii_keys() {
        let key = key_from_headers(&headers_with_key("order-42_retry~1"), "/todos").unwrap();

        assert_eq!(key.as_deref(), Some("order-42_retry~1"));
    }

    #[test]
    fn rejects_empty_long_and_spaced_keys() {
        let long = "k".repeat(256);

        for key in ["", long.as_str(), "two words"] {
            let problem = key_from_headers(&headers_with_key(key), "/todos").unwrap_err();
            assert_eq!(
                problem.http_status(),
                StatusCode::BAD_REQUEST,
                "key {key:?}"
            );
        }
    }

    #[test]
    fn accepts_the_longest_key() {
        let key = "k".repeat(255);

        assert!(key_from_headers(&headers_with_key(&key), "/todos").is_ok());
    }

    #[test]
    fn fingerprint_covers_method_path_and_body() {
        let base = fingerprint(&Method::POST, "/todos", b"{}");

        assert_eq!(base, fingerprint(&Method::POST, "/todos", b"{}"));
        assert_ne!(base, fingerprint(&Method::PUT, "/todos", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/todos/1", b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, "/todos", b"{ }"));
        assert_eq!(base.len(), 64);
    }
}
