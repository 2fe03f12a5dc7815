//! The device authorization grant (RFC 8628).
//!
//! A device asks `POST /oauth/device_authorization` for a device code (which
//! it keeps) and a user code (which it shows). The user enters the user code
//! at `/device`, signs in and approves or denies; meanwhile the device polls
//! the token endpoint. Tests skip the person and answer through
//! `/_control/oauth/device/approve` and `/deny`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use super::error::{ErrorCode, OAuthError};
use super::html::{self, Form};
use super::params::Params;
use super::store::{self, Decided, Decision, NewDeviceCode};
use super::{
    CLIENT_ID, DEFAULT_SCOPE, DEVICE_CODE_TTL_SECS, Secret, authenticate, base_url, digest,
    is_valid_scope, known_user, now_ms, secs_to_ms,
};
use crate::app::{AppState, read_body};
use crate::problem::{FieldError, Problem};

/// The letters of user codes: no vowels (no words) and no look-alikes (RFC 8628 6.1).
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// How many times to draw a new user code when one collides.
const USER_CODE_ATTEMPTS: usize = 5;

/// The largest control body accepted.
const CONTROL_BODY_LIMIT: usize = 16 * 1024;

#[derive(Serialize)]
struct DeviceAuthorization<'a> {
    device_code: &'a str,
    user_code: &'a str,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: u64,
    interval: u64,
}

/// Draws a user code such as `WDJB-MJHT`: 8 letters, about 34 bits.
fn generate_user_code() -> String {
    let mut code = String::with_capacity(9);
    while code.len() < 9 {
        let mut bytes = [0; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");

        // 240 is the largest multiple of 20 below 256: dropping bytes above it keeps letters uniform.
        for byte in bytes.into_iter().filter(|byte| *byte < 240) {
            if code.len() == 4 {
                code.push('-');
            }
            if code.len() == 9 {
                break;
            }
            code.push(char::from(USER_CODE_ALPHABET[usize::from(byte % 20)]));
        }
    }
    code
}

/// A user code as typed, reduced to what identifies it: letters, upper case.
fn normalize_user_code(typed: &str) -> String {
    typed
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|ch| ch.to_ascii_uppercase())
        .collect()
}

/// `POST /oauth/device_authorization`.
#[instrument(skip_all)]
pub(crate) async fn device_authorization(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match start(&state, &uri, &headers, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn start(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let params = Params::from_form(headers, body).await?;
    if params.get("client_id") != Some(CLIENT_ID) {
        return Err(OAuthError::unknown_client());
    }
    let scope = match params.get("scope") {
        Some(scope) if !is_valid_scope(scope) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "scope must be space-separated tokens of printable ASCII",
            ));
        }
        scope => scope.unwrap_or(DEFAULT_SCOPE).to_owned(),
    };

    let interval = state.oauth.settings().device_interval_secs;
    let device_code = Secret::generate();
    let device_code_digest = device_code.digest();
    let expires_at = now_ms().saturating_add(secs_to_ms(DEVICE_CODE_TTL_SECS));
    let user_code = state
        .db
        .run(move |conn| {
            for _ in 0..USER_CODE_ATTEMPTS {
                let user_code = generate_user_code();
                let device = NewDeviceCode {
                    device_code_digest: &device_code_digest,
                    user_code_digest: &digest(&normalize_user_code(&user_code)),
                    client_id: CLIENT_ID,
                    scope: &scope,
                    expires_at,
                    interval_secs: interval,
                };
                if store::create_device_code(conn, &device)? {
                    return Ok(Some(user_code));
                }
            }
            Ok(None)
        })
        .await
        .map_err(|err| OAuthError::database(err, uri.path()))?;
    let Some(user_code) = user_code else {
        return Err(OAuthError::Server(Problem::internal(uri.path())));
    };
    info!("device authorization started");

    let verification_uri = format!("{}/device", base_url(headers, uri));
    let body = DeviceAuthorization {
        device_code: device_code.expose(),
        user_code: &user_code,
        verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
        verification_uri,
        expires_in: DEVICE_CODE_TTL_SECS,
        interval,
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));

    Ok(response)
}

/// `GET /device`: where the user enters the code and approves.
pub(crate) async fn verification_page(uri: Uri) -> Response {
    let params = Params::parse(uri.query().unwrap_or("")).unwrap_or_default();

    approval_form(params.get("user_code"), None, None)
}

/// `POST /device`: the approval form, submitted.
#[instrument(skip_all)]
pub(crate) async fn verification_submit(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = match Params::from_form(&headers, body).await {
        Ok(params) => params,
        Err(err) => return Problem::bad_request(uri.path(), err.describe()).into_response(),
    };
    let user_code = params.get("user_code");
    let username = params.get("username");

    let decision = if params.get("decision") == Some("deny") {
        Decision::Deny
    } else {
        let password = params.get("password").unwrap_or_default();
        match username.and_then(|username| authenticate(username, password)) {
            Some(username) => Decision::Approve { username },
            None => {
                return approval_form(
                    user_code,
                    username,
                    Some("The username or password is wrong."),
                );
            }
        }
    };

    match decide(&state, user_code.unwrap_or_default(), decision).await {
        Ok(Decided::Recorded) if decision == Decision::Deny => html::page(
            "Request denied",
            "<p>The device will not be signed in. You can close this page.</p>",
        ),
        Ok(Decided::Recorded) => html::page(
            "Device approved",
            "<p>Return to your device: it will be signed in shortly.</p>",
        ),
        Ok(Decided::Unknown) => approval_form(
            user_code,
            username,
            Some("That code is unknown or has expired."),
        ),
        Ok(Decided::AlreadyAnswered) => {
            approval_form(user_code, username, Some("That code was already answered."))
        }
        Err(err) => err.into_problem(uri.path()).into_response(),
    }
}

async fn decide(
    state: &AppState,
    user_code: &str,
    decision: Decision<'static>,
) -> Result<Decided, crate::db::DbError> {
    let user_code_digest = digest(&normalize_user_code(user_code));
    let now = now_ms();

    let decided = state
        .db
        .run(move |conn| {
            Ok(store::decide_device_code(
                conn,
                &user_code_digest,
                decision,
                now,
            )?)
        })
        .await?;
    if decided == Decided::Recorded {
        info!(
            approved = decision != Decision::Deny,
            "device code answered"
        );
    }

    Ok(decided)
}

fn approval_form(user_code: Option<&str>, username: Option<&str>, error: Option<&str>) -> Response {
    let form = Form::new("/device", error)
        .input("Code shown on your device", "user_code", "text", user_code)
        .input("Username", "username", "text", username)
        .input("Password", "password", "password", None)
        .button("Approve", "allow")
        .button("Deny", "deny")
        .finish();

    html::page("Sign in a device", &form)
}

/// The body of the device controls.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceDecisionBody {
    user_code: String,
    username: Option<String>,
}

/// `POST /_control/oauth/device/approve`: approves a user code as `username`.
pub(crate) async fn control_approve(
    State(state): State<AppState>,
    uri: Uri,
    body: Body,
) -> Result<StatusCode, Problem> {
    let instance = uri.path();
    let body = read_decision(body, instance).await?;

    let username = body.username.as_deref().unwrap_or_default();
    let Some(username) = known_user(username) else {
        let error = FieldError::new("username", "must be a registered user");
        return Err(Problem::validation(instance, vec![error]));
    };

    decided_status(
        decide(&state, &body.user_code, Decision::Approve { username }).await,
        instance,
    )
}

/// `POST /_control/oauth/device/deny`: denies a user code.
pub(crate) async fn control_deny(
    State(state): State<AppState>,
    uri: Uri,
    body: Body,
) -> Result<StatusCode, Problem> {
    let instance = uri.path();
    let body = read_decision(body, instance).await?;

    decided_status(
        decide(&state, &body.user_code, Decision::Deny).await,
        instance,
    )
}

async fn read_decision(body: Body, instance: &str) -> Result<DeviceDecisionBody, Problem> {
    let body = read_body(body, CONTROL_BODY_LIMIT, instance).await?;

    serde_json::from_slice(&body).map_err(|err| Problem::malformed_body(instance, err.to_string()))
}

fn decided_status(
    decided: Result<Decided, crate::db::DbError>,
    instance: &str,
) -> Result<StatusCode, Problem> {
    match decided {
        Ok(Decided::Recorded) => Ok(StatusCode::NO_CONTENT),
        Ok(Decided::Unknown) => Err(Problem::not_found(
            instance,
            "no pending device authorization has this user code",
        )),
        Ok(Decided::AlreadyAnswered) => Err(Problem::status(
            StatusCode::CONFLICT,
            instance,
            "this device authorization was already answered",
        )),
        Err(err) => Err(err.into_problem(instance)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_look_like_the_rfc_example() {
        let code = generate_user_code();

        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert!(
            code.bytes()
                .filter(|byte| *byte != b'-')
                .all(|byte| USER_CODE_ALPHABET.contains(&byte))
        );
    }

    #[test]
    fn typed_user_codes_are_normalized() {
        assert_eq!(normalize_user_code("wdjb-mjht"), "WDJBMJHT");
        assert_eq!(normalize_user_code(" WDJB MJHT "), "WDJBMJHT");
    }
}
