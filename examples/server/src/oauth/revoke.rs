//! `POST /oauth/revoke`: token revocation (RFC 7009).
//!
//! The answer is 200 whether or not the token was known, so that revocation
//! cannot be used to probe for valid tokens. A refresh token takes its whole
//! grant with it; an access token goes alone.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tracing::{info, instrument};

use super::error::OAuthError;
use super::params::Params;
use super::store::{self, Revoked};
use super::{CLIENT_ID, digest, now_ms};
use crate::app::AppState;

/// `POST /oauth/revoke`.
#[instrument(skip_all)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    state.stats.record_oauth(|oauth| oauth.revocations += 1);

    match handle(&state, uri.path(), &headers, body).await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(err) => err.into_response(),
    }
}

async fn handle(
    state: &AppState,
    instance: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), OAuthError> {
    let params = Params::from_form(headers, body).await?;
    if params.get("client_id") != Some(CLIENT_ID) {
        return Err(OAuthError::unknown_client());
    }
    // The hint only speeds up a lookup (RFC 7009 2.1); one table holds both kinds.
    let token = digest(params.require("token")?);

    let now = now_ms();
    let revoked = state
        .db
        .run(move |conn| store::revoke_token(conn, &token, CLIENT_ID, now))
        .await
        .map_err(|err| OAuthError::database(err, instance))?;

    match revoked {
        Revoked::Grant(grant_id) => info!(grant_id, "grant revoked"),
        Revoked::AccessToken => info!("access token revoked"),
        Revoked::Nothing => info!("revocation of an unknown token"),
    }

    Ok(())
}
