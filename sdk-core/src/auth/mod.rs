//! Authentication: API keys, static bearer tokens and OAuth 2.0 sessions.
//!
//! A client carries at most one kind of [`Credentials`]. They are attached only to requests for
//! the client's own origin (scheme, host and port of the base URL), never to absolute URLs
//! elsewhere.
//!
//! An OAuth session is driven through [`Session`]: sign in (authorization code with PKCE for a
//! system browser, password for first-party apps, device authorization for devices without a
//! browser), then every request carries the access token and the refresh engine keeps it fresh.
//! Tokens live in a [`TokenStore`], by default the platform's secure store.

mod engine;
pub(crate) mod oauth;
mod store;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, broadcast};
use tracing::{debug, info, warn};
use url::Url;

use crate::Error;
use crate::internal::error::Failure;

pub(crate) use engine::{Engine, RefreshFailure, RefreshRules, SessionHook, SystemClock};
pub use oauth::{DeviceAuthorization, Endpoints};
pub use store::{KeychainStore, MemoryStore, StoredTokens, TokenStore};

/// A credential value: shown as `Secret(***)` in `Debug` output and never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The credential itself, for sending it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How a client authenticates its requests.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Credentials {
    /// An API key sent in a header, such as `X-Api-Key`.
    ApiKeyHeader {
        /// The header's name.
        name: String,
        /// The key.
        key: Secret,
    },
    /// An API key sent as a query parameter, such as `api_key`.
    ApiKeyQuery {
        /// The parameter's name.
        name: String,
        /// The key.
        key: Secret,
    },
    /// A fixed bearer token, sent as `Authorization: Bearer`.
    BearerToken(Secret),
}

/// How to reach the OAuth 2.0 authorization server, and who the app is to it.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    client_id: String,
    issuer: Option<Url>,
    endpoints: Option<Endpoints>,
    redirect_uri: Option<String>,
    scopes: Vec<String>,
    pub(crate) refresh_margin: Duration,
}

impl OAuthConfig {
    /// A public client whose endpoints come from the issuer's metadata (RFC 8414 or OpenID
    /// Connect discovery), fetched on first use.
    pub fn discover(client_id: impl Into<String>, issuer: &str) -> Result<OAuthConfig, Error> {
        let issuer = Url::parse(issuer).map_err(Failure::from)?;
        Ok(OAuthConfig::with(client_id.into(), Some(issuer), None))
    }

    /// A public client with explicit endpoints.
    pub fn with_endpoints(client_id: impl Into<String>, endpoints: Endpoints) -> OAuthConfig {
        OAuthConfig::with(client_id.into(), None, Some(endpoints))
    }

    fn with(client_id: String, issuer: Option<Url>, endpoints: Option<Endpoints>) -> OAuthConfig {
        OAuthConfig {
            client_id,
            issuer,
            endpoints,
            redirect_uri: None,
            scopes: Vec::new(),
            refresh_margin: RefreshRules::default().margin,
        }
    }

    /// The redirect URI registered for the app, for the authorization code flow.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> OAuthConfig {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// The scopes to ask for.
    pub fn scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> OAuthConfig {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// How long before expiry the access token is refreshed. Default: 60 s.
    pub fn refresh_margin(mut self, margin: Duration) -> OAuthConfig {
        self.refresh_margin = margin;
        self
    }

    /// The client identifier.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) fn store_account(&self, base_url: &Url) -> String {
        let server = self.issuer.as_ref().unwrap_or(base_url);
        format!(
            "{}@{}",
            self.client_id,
            server.origin().ascii_serialization()
        )
    }
}

/// A change in the session, for the app to react to (show sign-in, update the UI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A sign-in completed.
    SignedIn,
    /// The access token was refreshed.
    Refreshed,
    /// The server ended the session (its refresh token was rejected); the user must sign in again.
    Expired,
    /// The app signed the user out.
    SignedOut,
}

/// The start of an authorization code sign-in: open `url` in the system browser, then pass the
/// redirect the app receives to [`Session::complete_authorization`].
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    /// The URL to open.
    pub url: Url,
    /// The `state` value the redirect must carry back.
    pub state: String,
}

struct PendingAuthorization {
    verifier: Secret,
    redirect_uri: String,
}

/// The OAuth side of a client: the configuration, the server's endpoints and the HTTP client
/// that talks to them.
pub(crate) struct OAuthFlows {
    http: reqwest::Client,
    config: OAuthConfig,
    allow_insecure_http: bool,
    endpoints: OnceCell<Endpoints>,
    pending: Mutex<HashMap<String, PendingAuthorization>>,
}

impl OAuthFlows {
    pub(crate) fn new(
        http: reqwest::Client,
        config: OAuthConfig,
        allow_insecure_http: bool,
    ) -> Self {
        let endpoints = match &config.endpoints {
            Some(endpoints) => OnceCell::new_with(Some(endpoints.clone())),
            None => OnceCell::new(),
        };
        OAuthFlows {
            http,
            config,
            allow_insecure_http,
            endpoints,
            pending: Mutex::new(HashMap::new()),
        }
    }

    async fn endpoints(&self) -> Result<&Endpoints, Error> {
        self.endpoints
            .get_or_try_init(|| async {
                let issuer = self.config.issuer.as_ref().ok_or_else(|| {
                    Error::InvalidInput("OAuth needs an issuer or explicit endpoints".into())
                })?;
                debug!("discovering the authorization server");
                oauth::discover(&self.http, issuer, self.allow_insecure_http).await
            })
            .await
    }

    fn scope(&self) -> Option<String> {
        (!self.config.scopes.is_empty()).then(|| self.config.scopes.join(" "))
    }

    async fn exchange(&self, form: &[(&str, &str)], now: u64) -> Result<StoredTokens, Error> {
        let endpoint = self.endpoints().await?.token.clone();
        match oauth::token_request(&self.http, &endpoint, form, now).await? {
            oauth::Grant::Issued(tokens) => Ok(tokens),
            oauth::Grant::Refused { error, description } => {
                Err(Error::OAuth { error, description })
            }
        }
    }

    pub(crate) async fn refresh(
        &self,
        refresh_token: &Secret,
        now: u64,
    ) -> Result<StoredTokens, RefreshFailure> {
        let endpoint = match self.endpoints().await {
            Ok(endpoints) => endpoints.token.clone(),
            Err(error) => return Err(RefreshFailure::Transient(error)),
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", self.config.client_id.as_str()),
        ];
        match oauth::token_request(&self.http, &endpoint, &form, now).await {
            Ok(oauth::Grant::Issued(tokens)) => Ok(tokens),
            Ok(oauth::Grant::Refused { error, description }) => {
                Err(RefreshFailure::Definitive(Error::OAuth {
                    error,
                    description,
                }))
            }
            Err(error) => Err(RefreshFailure::Transient(error)),
        }
    }
}

/// The OAuth session of a client: sign-in, sign-out and session events.
///
/// Cheap to clone. Get it from [`Client::session`](crate::Client::session).
#[derive(Clone)]
pub struct Session {
    pub(crate) engine: Arc<Engine>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("signed_in", &self.is_signed_in())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether a user is signed in (tokens are held, whether or not the access token is fresh).
    pub fn is_signed_in(&self) -> bool {
        self.engine.is_signed_in()
    }

    /// The scope the server granted to the current session.
    pub fn scope(&self) -> Option<String> {
        self.engine.scope()
    }

    /// Every change of the session from now on. Events missed by a slow reader are skipped.
    pub fn events(&self) -> impl Stream<Item = SessionEvent> + Send + 'static {
        futures_util::stream::unfold(self.engine.subscribe(), |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => return Some((event, receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Builds the authorization URL for a sign-in in the system browser (authorization code
    /// with PKCE, S256). The verifier stays in memory until the redirect comes back.
    pub async fn authorization_url(&self) -> Result<AuthorizationRequest, Error> {
        let flows = self.engine.flows();
        let redirect_uri = flows.config.redirect_uri.clone().ok_or_else(|| {
            Error::InvalidInput("the authorization code flow needs a redirect URI".into())
        })?;
        let endpoint = flows
            .endpoints()
            .await?
            .authorization
            .clone()
            .ok_or_else(|| {
                Error::InvalidInput("the server has no authorization endpoint".into())
            })?;

        let pkce = oauth::Pkce::new()?;
        let state = oauth::random_token(16)?;
        let mut url = endpoint;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &flows.config.client_id)
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("state", &state)
                .append_pair("code_challenge", &pkce.challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(scope) = flows.scope() {
                query.append_pair("scope", &scope);
            }
        }

        let pending = PendingAuthorization {
            verifier: pkce.verifier,
            redirect_uri,
        };
        flows
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(state.clone(), pending);
        Ok(AuthorizationRequest { url, state })
    }

    /// Completes a browser sign-in from the redirect URL the app received.
    ///
    /// The `state` must match a request made by [`Session::authorization_url`]; an error in the
    /// redirect (such as `access_denied`) becomes [`Error::OAuth`].
    pub async fn complete_authorization(&self, redirect_url: &str) -> Result<(), Error> {
        let flows = self.engine.flows();
        let parameters: HashMap<_, _> = oauth::redirect_parameters(redirect_url)?
            .into_iter()
            .collect();

        let state = parameters.get("state").ok_or_else(|| Error::OAuth {
            error: "invalid_state".into(),
            description: Some("the redirect carries no state".into()),
        })?;
        let pending = flows
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(state.as_str());
        let pending = pending.ok_or_else(|| Error::OAuth {
            error: "invalid_state".into(),
            description: Some("the redirect's state matches no sign-in in progress".into()),
        })?;
        if let Some(error) = parameters.get("error") {
            return Err(Error::OAuth {
                error: error.clone(),
                description: parameters
                    .get("error_description")
                    .map(|description| description.as_str().into()),
            });
        }
        let code = parameters.get("code").ok_or_else(|| Error::OAuth {
            error: "invalid_request".into(),
            description: Some("the redirect carries no code".into()),
        })?;

        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", pending.redirect_uri.as_str()),
            ("client_id", flows.config.client_id.as_str()),
            ("code_verifier", pending.verifier.expose()),
        ];
        let tokens = flows.exchange(&form, self.now()).await?;
        self.engine.sign_in(tokens);
        info!("signed in with the authorization code flow");
        Ok(())
    }

    /// Signs in with a username and password (resource owner password grant), for first-party
    /// apps whose own server is the authorization server.
    pub async fn sign_in_with_password(&self, username: &str, password: &str) -> Result<(), Error> {
        let flows = self.engine.flows();
        let scope = flows.scope();
        let mut form = vec![
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", flows.config.client_id.as_str()),
        ];
        if let Some(scope) = &scope {
            form.push(("scope", scope));
        }

        let tokens = flows.exchange(&form, self.now()).await?;
        self.engine.sign_in(tokens);
        info!("signed in with a password");
        Ok(())
    }

    /// Starts a device authorization sign-in (RFC 8628): show the user `user_code` and
    /// `verification_uri`, then call [`Session::complete_device_authorization`].
    pub async fn start_device_authorization(&self) -> Result<DeviceAuthorization, Error> {
        let flows = self.engine.flows();
        let endpoint = flows
            .endpoints()
            .await?
            .device_authorization
            .clone()
            .ok_or_else(|| {
                Error::InvalidInput("the server has no device authorization endpoint".into())
            })?;
        let scope = flows.scope();
        let mut form = vec![("client_id", flows.config.client_id.as_str())];
        if let Some(scope) = &scope {
            form.push(("scope", scope));
        }
        oauth::device_authorization(&flows.http, &endpoint, &form).await
    }

    /// Polls until the user approves or denies the device sign-in, or the code expires.
    /// Dropping the future stops the polling.
    pub async fn complete_device_authorization(
        &self,
        device: &DeviceAuthorization,
    ) -> Result<(), Error> {
        let flows = self.engine.flows();
        let mut interval = Duration::from_secs(device.interval);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(device.expires_in);

        loop {
            tokio::time::sleep(interval).await;
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::OAuth {
                    error: "expired_token".into(),
                    description: Some("the device code expired before approval".into()),
                });
            }
            let form = [
                ("grant_type", oauth::device_grant_type()),
                ("device_code", device.device_code.expose()),
                ("client_id", flows.config.client_id.as_str()),
            ];
            match flows.exchange(&form, self.now()).await {
                Ok(tokens) => {
                    self.engine.sign_in(tokens);
                    info!("signed in with the device authorization grant");
                    return Ok(());
                }
                Err(Error::OAuth { error, .. }) if error == "authorization_pending" => {}
                Err(Error::OAuth { error, .. }) if error == "slow_down" => {
                    interval += Duration::from_secs(5);
                }
                Err(error) if error.is_transient() => {
                    debug!(%error, "device authorization poll failed; polling on");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Signs out: lets the SDK's components make their last authenticated calls (push
    /// unregisters the device), revokes the refresh token at the server (best effort, RFC 7009),
    /// then forgets the tokens locally whatever the server said.
    ///
    /// Once started, the sign-out runs to completion even if the caller stops waiting for it.
    pub async fn sign_out(&self) -> Result<(), Error> {
        let session = self.clone();
        tokio::spawn(async move { session.run_sign_out().await })
            .await
            .map_err(|_| Error::Internal("the sign-out task failed".into()))
    }

    async fn run_sign_out(&self) {
        // Signing out while signed out changes nothing and announces nothing.
        if !self.engine.is_signed_in() {
            return;
        }
        for hook in self.engine.hooks() {
            hook.before_sign_out().await;
        }
        let flows = self.engine.flows();
        let previous = self.engine.end(SessionEvent::SignedOut);
        let Some(tokens) = previous else {
            return;
        };

        let revocation = match flows.endpoints().await {
            Ok(endpoints) => endpoints.revocation.clone(),
            Err(error) => {
                warn!(%error, "could not find the revocation endpoint");
                None
            }
        };
        let Some(endpoint) = revocation else {
            return;
        };
        let (token, hint) = match &tokens.refresh_token {
            Some(refresh) => (refresh, "refresh_token"),
            None => (&tokens.access_token, "access_token"),
        };
        let form = [
            ("token", token.expose()),
            ("token_type_hint", hint),
            ("client_id", flows.config.client_id.as_str()),
        ];
        if let Err(error) = oauth::revoke(&flows.http, &endpoint, &form).await {
            warn!(%error, "token revocation failed; signed out locally");
        }
        info!("signed out");
    }

    fn now(&self) -> u64 {
        self.engine.now_secs()
    }
}
