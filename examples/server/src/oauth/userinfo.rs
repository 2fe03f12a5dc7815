//! `GET /me`: the protected resource, guarded by bearer tokens (RFC 6750).
//!
//! A request without credentials gets a bare challenge; one whose token is
//! unknown, expired or revoked gets `error="invalid_token"` so a client knows
//! to refresh rather than to ask the user again. Both come with a problem body.
//!
//! [`authenticate`] and [`require_user`] are the one way the server checks a
//! bearer token; the device registry uses them too.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::store::{self, AccessCheck};
use super::{REALM, digest, now_ms};
use crate::app::AppState;
use crate::problem::Problem;

#[derive(Serialize)]
struct MeBody {
    sub: String,
    scope: String,
    grant_id: i64,
}

/// The user a valid access token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    /// The username, which is also the `sub` of `/me`.
    pub username: String,

    /// The scope granted to the token.
    pub scope: String,

    /// The grant the token was issued under.
    pub grant_id: i64,
}

/// `GET /me`: who the access token speaks for.
pub(crate) async fn me(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let user = match require_user(&state, &headers, uri.path()).await {
        Ok(user) => user,
        Err(response) => return response,
    };

    let body = MeBody {
        sub: user.username,
        scope: user.scope,
        grant_id: user.grant_id,
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Checks the request's bearer token, if it has one.
///
/// `Ok(None)` means the request carries no bearer credentials at all. A token
/// that is unknown, expired or revoked is an `Err` holding the 401 response to
/// send, with an `invalid_token` challenge.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    instance: &str,
) -> Result<Option<User>, Response> {
    let Some(token) = bearer_token(headers) else {
        return Ok(None);
    };

    let token = digest(token);
    let now = now_ms();
    let check = state
        .db
        .run(move |conn| Ok(store::check_access_token(conn, &token, now)?))
        .await;

    let reason = match check {
        Ok(AccessCheck::Valid {
            username,
            scope,
            grant_id,
        }) => {
            return Ok(Some(User {
                username,
                scope,
                grant_id,
            }));
        }
        Ok(AccessCheck::Unknown) => "the access token is not valid",
        Ok(AccessCheck::Expired) => "the access token has expired",
        Ok(AccessCheck::Revoked) => "the access token has been revoked",
        Err(err) => return Err(err.into_problem(instance).into_response()),
    };

    Err(unauthorized(instance, Some(reason)))
}

/// Like [`authenticate`], but a request without credentials gets the bare 401 challenge.
pub(crate) async fn require_user(
    state: &AppState,
    headers: &HeaderMap,
    instance: &str,
) -> Result<User, Response> {
    authenticate(state, headers, instance)
        .await?
        .ok_or_else(|| unauthorized(instance, None))
}

/// The credential of an `Authorization: Bearer` header (RFC 6750 2.1), if there is one.
///
/// The scheme is case-insensitive; another scheme counts as no credentials.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;

    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// 401 with a bearer challenge, naming `invalid_token` when a token was presented.
pub(crate) fn unauthorized(instance: &str, invalid_token: Option<&str>) -> Response {
    let (challenge, detail) = match invalid_token {
        None => (
            format!("Bearer realm=\"{REALM}\""),
            "this resource needs a bearer access token",
        ),
        Some(reason) => (
            format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{reason}\""
            ),
            reason,
        ),
    };

    let mut response = Problem::status(StatusCode::UNAUTHORIZED, instance, detail).into_response();
    if let Ok(challenge) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }

    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
