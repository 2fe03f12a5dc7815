//! `/oauth/authorize`: the authorization endpoint (RFC 6749 4.1.1, RFC 7636 4.3).
//!
//! A request is checked in two stages. First the client and its redirect URI:
//! until both are known good, nothing may be sent to that URI, so a failure
//! here is a 400 problem shown to whoever made the request. Then everything
//! else: a failure there is reported to the client by redirecting to it.
//!
//! Who the user is comes from one of two places. Tests pass `login_hint`:
//! a known username approves at once, `deny` refuses. Anyone else gets a
//! sign-in form that posts back here.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tracing::{info, instrument};

use super::html::{self, Form};
use super::params::Params;
use super::store::{self, NewCode};
use super::{
    CLIENT_ID, CODE_TTL_MS, DEFAULT_SCOPE, Secret, authenticate, is_pkce_value,
    is_registered_redirect, is_valid_scope, known_user, now_ms,
};
use crate::app::AppState;
use crate::problem::Problem;

/// Where results go: a registered redirect URI, and the state to echo back.
#[derive(Debug)]
struct Target {
    redirect_uri: String,
    state: Option<String>,
}

/// A request that passed every check, waiting for the user's answer.
#[derive(Debug)]
struct Approval {
    code_challenge: String,
    scope: String,
}

impl Target {
    /// The first stage: a known client and one of its redirect URIs.
    fn from_params(params: &Params, instance: &str) -> Result<Self, Problem> {
        if params.get("client_id") != Some(CLIENT_ID) {
            return Err(Problem::bad_request(
                instance,
                "client_id is missing or not a registered client",
            ));
        }
        let redirect_uri = match params.get("redirect_uri") {
            Some(uri) if is_registered_redirect(uri) => uri.to_owned(),
            _ => {
                return Err(Problem::bad_request(
                    instance,
                    "redirect_uri is missing or not registered for this client",
                ));
            }
        };

        Ok(Self {
            redirect_uri,
            state: params.get("state").map(str::to_owned),
        })
    }

    /// 302 to the redirect URI with these parameters and the state.
    fn redirect(&self, pairs: &[(&str, &str)]) -> Response {
        let mut pairs = pairs.to_vec();
        if let Some(state) = &self.state {
            pairs.push(("state", state));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        let separator = if self.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        let location = format!("{}{separator}{query}", self.redirect_uri);

        let Ok(location) = HeaderValue::from_str(&location) else {
            return Problem::bad_request("/oauth/authorize", "redirect_uri is not a valid URI")
                .into_response();
        };
        let mut response = StatusCode::FOUND.into_response();
        let headers = response.headers_mut();
        headers.insert(header::LOCATION, location);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));

        response
    }

    /// 302 to the redirect URI with an error (RFC 6749 4.1.2.1).
    fn error(&self, error: &str, description: &str) -> Response {
        self.redirect(&[("error", error), ("error_description", description)])
    }
}

/// The second stage: response type, PKCE and scope.
fn check_request(params: &Params) -> Result<Approval, (&'static str, &'static str)> {
    if params.get("response_type") != Some("code") {
        return Err(("invalid_request", "response_type must be code"));
    }
    if params.get("code_challenge_method") != Some("S256") {
        return Err(("invalid_request", "code_challenge_method must be S256"));
    }
    let code_challenge = match params.get("code_challenge") {
        Some(challenge) if is_pkce_value(challenge) => challenge.to_owned(),
        Some(_) => {
            return Err((
                "invalid_request",
                "code_challenge must be 43 to 128 unreserved characters",
            ));
        }
        None => return Err(("invalid_request", "code_challenge is required")),
    };
    let scope = match params.get("scope") {
        Some(scope) if !is_valid_scope(scope) => {
            return Err(("invalid_scope", "scope is not well formed"));
        }
        scope => scope.unwrap_or(DEFAULT_SCOPE).to_owned(),
    };

    Ok(Approval {
        code_challenge,
        scope,
    })
}

/// `GET /oauth/authorize`.
#[instrument(skip_all)]
pub(crate) async fn authorize(State(state): State<AppState>, uri: Uri) -> Response {
    let instance = uri.path();
    let params = match Params::parse(uri.query().unwrap_or("")) {
        Ok(params) => params,
        Err(err) => return Problem::bad_request(instance, err.describe()).into_response(),
    };
    let target = match Target::from_params(&params, instance) {
        Ok(target) => target,
        Err(problem) => return problem.into_response(),
    };
    let approval = match check_request(&params) {
        Ok(approval) => approval,
        Err((error, description)) => return target.error(error, description),
    };

    let hint = params.get("login_hint");
    if hint == Some("deny") {
        return target.error("access_denied", "the user denied the request");
    }

    match hint.and_then(known_user) {
        Some(username) => issue_code(&state, &target, &approval, username).await,
        None => sign_in_page(&target, &approval, hint, None),
    }
}

/// `POST /oauth/authorize`: the sign-in form, submitted.
#[instrument(skip_all)]
pub(crate) async fn submit(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let instance = uri.path();
    let params = match Params::from_form(&headers, body).await {
        Ok(params) => params,
        Err(err) => return Problem::bad_request(instance, err.describe()).into_response(),
    };
    let target = match Target::from_params(&params, instance) {
        Ok(target) => target,
        Err(problem) => return problem.into_response(),
    };
    let approval = match check_request(&params) {
        Ok(approval) => approval,
        Err((error, description)) => return target.error(error, description),
    };

    if params.get("decision") == Some("deny") {
        return target.error("access_denied", "the user denied the request");
    }

    let username = params.get("username");
    let password = params.get("password").unwrap_or_default();
    match username.and_then(|username| authenticate(username, password)) {
        Some(username) => issue_code(&state, &target, &approval, username).await,
        None => sign_in_page(
            &target,
            &approval,
            username,
            Some("The username or password is wrong."),
        ),
    }
}

/// Stores a fresh code for `username` and redirects to the client with it.
async fn issue_code(
    state: &AppState,
    target: &Target,
    approval: &Approval,
    username: &'static str,
) -> Response {
    let code = Secret::generate();

    let code_digest = code.digest();
    let redirect_uri = target.redirect_uri.clone();
    let code_challenge = approval.code_challenge.clone();
    let scope = approval.scope.clone();
    let expires_at = now_ms() + CODE_TTL_MS;
    let stored = state
        .db
        .run(move |conn| {
            let code = NewCode {
                client_id: CLIENT_ID,
                redirect_uri: &redirect_uri,
                code_challenge: &code_challenge,
                username,
                scope: &scope,
            };
            Ok(store::create_code(conn, &code_digest, &code, expires_at)?)
        })
        .await;
    if let Err(err) = stored {
        return err.into_problem("/oauth/authorize").into_response();
    }

    info!(username, "authorization code issued");
    target.redirect(&[("code", code.expose())])
}

fn sign_in_page(
    target: &Target,
    approval: &Approval,
    username: Option<&str>,
    error: Option<&str>,
) -> Response {
    let form = Form::new("/oauth/authorize", error)
        .hidden("response_type", Some("code"))
        .hidden("client_id", Some(CLIENT_ID))
        .hidden("redirect_uri", Some(&target.redirect_uri))
        .hidden("state", target.state.as_deref())
        .hidden("code_challenge", Some(&approval.code_challenge))
        .hidden("code_challenge_method", Some("S256"))
        .hidden("scope", Some(&approval.scope))
        .input("Username", "username", "text", username)
        .input("Password", "password", "password", None)
        .button("Sign in", "allow")
        .button("Deny", "deny")
        .finish();
    let body = format!(
        "<p><strong>{}</strong> asks for access to <strong>{}</strong>.</p>{form}",
        html::escape(CLIENT_ID),
        html::escape(&approval.scope),
    );

    html::page("Sign in to Roundtrip", &body)
}
