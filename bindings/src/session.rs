//! Sessions across the FFI: OAuth settings, sign-in and sign-out calls, the app's token store and
//! session event listeners.

use std::sync::Arc;

use futures_util::StreamExt;
use roundtrip::auth::{self, Secret};

use crate::RoundtripError;
use crate::runtime;

/// How the client reaches the OAuth 2.0 authorization server. Give `issuer` for discovery, or
/// the endpoints explicitly.
#[derive(uniffi::Record, Clone)]
pub struct OAuthSettings {
    /// The app's client identifier (a public client: no secret).
    pub client_id: String,
    /// The issuer URL whose metadata names the endpoints (RFC 8414 / OpenID discovery).
    #[uniffi(default = None)]
    pub issuer: Option<String>,
    /// The token endpoint, when not discovered.
    #[uniffi(default = None)]
    pub token_endpoint: Option<String>,
    /// The authorization endpoint, when not discovered.
    #[uniffi(default = None)]
    pub authorization_endpoint: Option<String>,
    /// The revocation endpoint, when not discovered.
    #[uniffi(default = None)]
    pub revocation_endpoint: Option<String>,
    /// The device authorization endpoint, when not discovered.
    #[uniffi(default = None)]
    pub device_authorization_endpoint: Option<String>,
    /// The redirect URI registered for the app (authorization code flow).
    #[uniffi(default = None)]
    pub redirect_uri: Option<String>,
    /// The scopes to ask for.
    #[uniffi(default)]
    pub scopes: Vec<String>,
    /// Refresh this many seconds before the access token expires. Default: 60.
    #[uniffi(default = None)]
    pub refresh_margin_secs: Option<u64>,
}

/// A session's tokens, as the app's [`TokenStore`] keeps them. Keep them in the platform's
/// secure storage only.
#[derive(uniffi::Record, Clone)]
pub struct StoredTokens {
    /// The access token.
    pub access_token: String,
    /// The refresh token, if any.
    pub refresh_token: Option<String>,
    /// Expiry of the access token, in seconds since the Unix epoch.
    pub expires_at: Option<u64>,
    /// The granted scope.
    pub scope: Option<String>,
    /// The sign-in's identifier (names its cache partition); not a credential.
    #[uniffi(default = None)]
    pub session_id: Option<String>,
}

/// Keeps a session's tokens across restarts; implement it in Kotlin (Android Keystore) or Swift
/// when the default platform store is not available. Called from the SDK's threads.
#[uniffi::export(with_foreign)]
pub trait TokenStore: Send + Sync {
    /// The stored tokens, if any.
    fn load(&self) -> Result<Option<StoredTokens>, RoundtripError>;
    /// Replaces the stored tokens.
    fn save(&self, tokens: StoredTokens) -> Result<(), RoundtripError>;
    /// Removes the stored tokens.
    fn clear(&self) -> Result<(), RoundtripError>;
}

/// A change in the session.
#[derive(uniffi::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// A sign-in completed.
    SignedIn,
    /// The access token was refreshed.
    Refreshed,
    /// The server ended the session; the user must sign in again.
    Expired,
    /// The app signed the user out.
    SignedOut,
}

/// Receives session events. Kotlin wraps it in a `Flow`, Swift in an `AsyncStream`.
#[uniffi::export(with_foreign)]
pub trait SessionListener: Send + Sync {
    /// Called for each event, in order, from the SDK's threads. Return quickly: hand the event
    /// to the app's own dispatcher rather than doing work here.
    fn on_event(&self, event: SessionEvent);
}

/// An active listener registration; `cancel` stops the events.
#[derive(uniffi::Object)]
pub struct Subscription {
    task: tokio::task::AbortHandle,
}

#[uniffi::export]
impl Subscription {
    /// Stops delivering events.
    pub fn cancel(&self) {
        self.task.abort();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The start of a browser sign-in: open `url`, then pass the redirect to
/// `completeAuthorization`.
#[derive(uniffi::Record, Clone)]
pub struct AuthorizationRequest {
    /// The URL to open in the system browser.
    pub url: String,
    /// The state the redirect must carry back.
    pub state: String,
}

/// What to show the user for a device sign-in.
#[derive(uniffi::Object)]
pub struct DeviceAuthorization {
    inner: auth::DeviceAuthorization,
}

#[uniffi::export]
impl DeviceAuthorization {
    /// The code the user enters.
    pub fn user_code(&self) -> String {
        self.inner.user_code.clone()
    }

    /// Where the user enters it.
    pub fn verification_uri(&self) -> String {
        self.inner.verification_uri.clone()
    }

    /// The verification URI with the code filled in, when the server gives one.
    pub fn verification_uri_complete(&self) -> Option<String> {
        self.inner.verification_uri_complete.clone()
    }

    /// Seconds until the codes expire.
    pub fn expires_in_secs(&self) -> u64 {
        self.inner.expires_in
    }
}

pub(crate) fn oauth_config(settings: OAuthSettings) -> Result<auth::OAuthConfig, RoundtripError> {
    let mut config = match (&settings.issuer, &settings.token_endpoint) {
        (_, Some(token)) => {
            let parse = |text: &Option<String>| -> Result<Option<url::Url>, RoundtripError> {
                text.as_deref().map(parse_url).transpose()
            };
            let endpoints = auth::Endpoints {
                token: parse_url(token)?,
                authorization: parse(&settings.authorization_endpoint)?,
                revocation: parse(&settings.revocation_endpoint)?,
                device_authorization: parse(&settings.device_authorization_endpoint)?,
            };
            auth::OAuthConfig::with_endpoints(settings.client_id, endpoints)
        }
        (Some(issuer), None) => auth::OAuthConfig::discover(settings.client_id, issuer)?,
        (None, None) => {
            return Err(RoundtripError::InvalidInput {
                reason: "OAuth settings need an issuer or a token endpoint".into(),
            });
        }
    };
    if let Some(uri) = settings.redirect_uri {
        config = config.redirect_uri(uri);
    }
    if let Some(secs) = settings.refresh_margin_secs {
        config = config.refresh_margin(std::time::Duration::from_secs(secs));
    }
    Ok(config.scopes(settings.scopes))
}

fn parse_url(text: &str) -> Result<url::Url, RoundtripError> {
    url::Url::parse(text).map_err(|error| RoundtripError::InvalidInput {
        reason: format!("invalid endpoint URL: {error}"),
    })
}

/// Adapts the app's store to the core's trait.
pub(crate) struct ForeignStore(pub(crate) Arc<dyn TokenStore>);

impl auth::TokenStore for ForeignStore {
    fn load(&self) -> Result<Option<auth::StoredTokens>, roundtrip::Error> {
        let tokens = self.0.load().map_err(storage_error)?;
        Ok(tokens.map(|tokens| auth::StoredTokens {
            access_token: Secret::new(tokens.access_token),
            refresh_token: tokens.refresh_token.map(Secret::new),
            expires_at: tokens.expires_at,
            scope: tokens.scope,
            session_id: tokens.session_id,
        }))
    }

    fn save(&self, tokens: &auth::StoredTokens) -> Result<(), roundtrip::Error> {
        let tokens = StoredTokens {
            access_token: tokens.access_token.expose().to_owned(),
            refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose().to_owned()),
            expires_at: tokens.expires_at,
            scope: tokens.scope.clone(),
            session_id: tokens.session_id.clone(),
        };
        self.0.save(tokens).map_err(storage_error)
    }

    fn clear(&self) -> Result<(), roundtrip::Error> {
        self.0.clear().map_err(storage_error)
    }
}

fn storage_error(error: RoundtripError) -> roundtrip::Error {
    roundtrip::Error::Storage(error.to_string())
}

impl From<auth::SessionEvent> for SessionEvent {
    fn from(event: auth::SessionEvent) -> Self {
        match event {
            auth::SessionEvent::SignedIn => SessionEvent::SignedIn,
            auth::SessionEvent::Refreshed => SessionEvent::Refreshed,
            auth::SessionEvent::Expired => SessionEvent::Expired,
            _ => SessionEvent::SignedOut,
        }
    }
}

pub(crate) fn subscribe(
    session: auth::Session,
    listener: Arc<dyn SessionListener>,
) -> Subscription {
    let mut events = Box::pin(session.events());
    let task = runtime::spawn(async move {
        while let Some(event) = events.next().await {
            listener.on_event(event.into());
        }
    });
    Subscription { task }
}

pub(crate) fn device(inner: auth::DeviceAuthorization) -> Arc<DeviceAuthorization> {
    Arc::new(DeviceAuthorization { inner })
}

pub(crate) fn device_inner(device: &DeviceAuthorization) -> auth::DeviceAuthorization {
    device.inner.clone()
}

pub(crate) fn authorization_request(request: auth::AuthorizationRequest) -> AuthorizationRequest {
    AuthorizationRequest {
        url: request.url.to_string(),
        state: request.state,
    }
}
