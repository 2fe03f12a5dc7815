//! `POST /oauth/token`: every grant type, one endpoint (RFC 6749 3.2).
//!
//! The handler reads the form, identifies the client, and hands the grant to
//! the store, which decides in one transaction. Success is the token response
//! of RFC 6749 5.1; failure is an OAuth error body (5.2). Both carry
//! `Cache-Control: no-store`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::{debug, info, instrument, warn};

use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use super::store::{self, CodeExchange, Exchange, Issued};
use super::{
    CLIENT_ID, DEFAULT_SCOPE, authenticate, digest, is_pkce_value, is_valid_scope, now_ms,
};
use crate::app::AppState;

/// The grant type URN of RFC 8628 3.4.
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The success body of RFC 6749 5.1.
#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: &'a str,
    scope: &'a str,
}

/// `POST /oauth/token`.
#[instrument(skip_all, fields(grant_type))]
pub(crate) async fn token(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    state.stats.record_oauth(|oauth| oauth.token_requests += 1);

    match exchange(&state, uri.path(), &headers, body).await {
        Ok(issued) => {
            info!(grant_id = issued.grant_id, "tokens issued");
            token_response(&issued)
        }
        Err(err) => {
            if let Some(code) = err.code() {
                debug!(error = code.as_str(), "token request refused");
            }
            err.into_response()
        }
    }
}

async fn exchange(
    state: &AppState,
    instance: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Issued, OAuthError> {
    let params = Params::from_form(headers, body).await?;
    let grant_type = params.require("grant_type")?.to_owned();
    tracing::Span::current().record("grant_type", grant_type.as_str());

    if grant_type == "refresh_token" {
        state.stats.record_oauth(|oauth| oauth.refresh_grants += 1);
    }
    if params.get("client_id") != Some(CLIENT_ID) {
        return Err(OAuthError::unknown_client());
    }

    let settings = state.oauth.settings();
    let now = now_ms();
    let outcome = match grant_type.as_str() {
        "authorization_code" => {
            let code = digest(params.require("code")?);
            let redirect_uri = params.require("redirect_uri")?.to_owned();
            let code_verifier = params.require("code_verifier")?.to_owned();
            if !is_pkce_value(&code_verifier) {
                return Err(OAuthError::invalid_request(
                    "code_verifier must be 43 to 128 unreserved characters",
                ));
            }

            state
                .db
                .run(move |conn| {
                    let presented = CodeExchange {
                        client_id: CLIENT_ID,
                        redirect_uri: &redirect_uri,
                        code_verifier: &code_verifier,
                    };
                    store::redeem_code(conn, &code, &presented, &settings, now)
                })
                .await
        }
        "password" => {
            let username = params.require("username")?;
            let password = params.require("password")?;
            let scope = requested_scope(&params)?
                .unwrap_or(DEFAULT_SCOPE)
                .to_owned();
            let Some(username) = authenticate(username, password) else {
                return Err(OAuthError::invalid_grant(
                    "the username or password is wrong",
                ));
            };

            state
                .db
                .run(move |conn| {
                    let tx = conn.transaction()?;
                    let grant_id = store::create_grant(&tx, CLIENT_ID, username, &scope, now)?;
                    let issued = store::issue_tokens(&tx, grant_id, &scope, &settings, now)?;
                    tx.commit()?;
                    Ok(Exchange::Issued(issued))
                })
                .await
        }
        "refresh_token" => {
            let token = digest(params.require("refresh_token")?);
            let scope = requested_scope(&params)?.map(str::to_owned);

            state
                .db
                .run(move |conn| {
                    store::refresh(conn, &token, CLIENT_ID, scope.as_deref(), &settings, now)
                })
                .await
        }
        DEVICE_CODE_GRANT => {
            let device_code = digest(params.require("device_code")?);

            state
                .db
                .run(move |conn| {
                    store::poll_device_code(conn, &device_code, CLIENT_ID, &settings, now)
                })
                .await
        }
        _ => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code, password, refresh_token or the device code URN",
            ));
        }
    };

    match outcome.map_err(|err| OAuthError::database(err, instance))? {
        Exchange::Issued(issued) => Ok(issued),
        Exchange::Refused { code, reason } => Err(OAuthError::new(code, reason)),
        Exchange::ReuseDetected { grant_id } => {
            state
                .stats
                .record_oauth(|oauth| oauth.refresh_reuse_detected += 1);
            warn!(grant_id, "refresh token reused; grant revoked");

            Err(OAuthError::invalid_grant(
                "the refresh token was already used; the grant is revoked",
            ))
        }
    }
}

/// The `scope` parameter, checked for form; `None` when absent.
fn requested_scope(params: &Params) -> Result<Option<&str>, OAuthError> {
    match params.get("scope") {
        Some(scope) if !is_valid_scope(scope) => Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope must be space-separated tokens of printable ASCII",
        )),
        scope => Ok(scope),
    }
}

fn token_response(issued: &Issued) -> Response {
    let body = TokenBody {
        access_token: issued.access_token.expose(),
        token_type: "Bearer",
        expires_in: issued.expires_in,
        refresh_token: issued.refresh_token.expose(),
        scope: &issued.scope,
    };
    let mut response = Json(body).into_response();

    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));

    response
}
