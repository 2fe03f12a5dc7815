//! Test controls under `/_control/oauth`: lifetimes, forced expiry and counts.
//!
//! The device approve and deny controls live with the device grant, in
//! [`super::device`].

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{now_ms, store};
use crate::app::{AppState, read_body};
use crate::problem::Problem;

/// The largest settings body accepted.
const BODY_LIMIT: usize = 16 * 1024;

/// The body of `POST /_control/oauth/settings`; absent fields stay as they are.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    device_interval_secs: Option<u64>,
}

/// The body of `GET /_control/oauth/tokens`.
#[derive(Debug, Serialize)]
pub(crate) struct TokensBody {
    access_tokens_issued: u64,
    refresh_tokens_issued: u64,
}

/// `POST /_control/oauth/settings`: changes lifetimes and the device polling interval.
///
/// New values apply to tokens and device codes issued from now on.
pub(crate) async fn settings(
    State(state): State<AppState>,
    uri: Uri,
    body: Body,
) -> Result<StatusCode, Problem> {
    let instance = uri.path();
    let body = read_body(body, BODY_LIMIT, instance).await?;
    let body: SettingsBody = serde_json::from_slice(&body)
        .map_err(|err| Problem::malformed_body(instance, err.to_string()))?;

    state.oauth.update(|settings| {
        if let Some(ttl) = body.access_token_ttl_secs {
            settings.access_token_ttl_secs = ttl;
        }
        if let Some(ttl) = body.refresh_token_ttl_secs {
            settings.refresh_token_ttl_secs = ttl;
        }
        if let Some(interval) = body.device_interval_secs {
            settings.device_interval_secs = interval;
        }
    });
    info!(settings = ?state.oauth.settings(), "oauth settings changed");

    Ok(StatusCode::NO_CONTENT)
}

/// `POST /_control/oauth/expire-access-tokens`: every access token issued so far expires now.
pub(crate) async fn expire_access_tokens(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<StatusCode, Problem> {
    let now = now_ms();

    state
        .db
        .run(move |conn| Ok(store::expire_access_tokens(conn, now)?))
        .await
        .map_err(|err| err.into_problem(uri.path()))?;
    info!("access tokens expired");

    Ok(StatusCode::NO_CONTENT)
}

/// `GET /_control/oauth/tokens`: how many tokens were issued, never their values.
pub(crate) async fn tokens(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<TokensBody>, Problem> {
    let counts = state
        .db
        .run(|conn| Ok(store::counts(conn)?))
        .await
        .map_err(|err| err.into_problem(uri.path()))?;

    Ok(Json(TokensBody {
        access_tokens_issued: counts.access_tokens_issued,
        refresh_tokens_issued: counts.refresh_tokens_issued,
    }))
}
