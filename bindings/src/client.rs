//! The client object.

use std::sync::Arc;
use std::time::Duration;

use crate::RoundtripError;
use crate::realtime::{Channel, ChannelConfig};
use crate::runtime::{self, CancellationToken};
use crate::session::{ForeignStore, OAuthSettings, TokenStore};
use crate::types::{ClientConfig, Request, Response};

/// A connection to one backend. Create one per backend and keep it for the life of the app.
#[derive(uniffi::Object)]
pub struct Client {
    inner: roundtrip::Client,
}

#[uniffi::export]
impl Client {
    /// Builds a client. Fails with `InvalidInput` or `InsecureTransport` for a bad configuration.
    #[uniffi::constructor]
    pub fn new(config: ClientConfig) -> Result<Arc<Self>, RoundtripError> {
        let inner = builder(config).build()?;
        Ok(Arc::new(Client { inner }))
    }

    /// Builds a client whose requests and channels carry an OAuth session's access token,
    /// with the tokens kept in `store`. A session saved there by an earlier run is picked up.
    #[uniffi::constructor]
    pub fn with_session(
        config: ClientConfig,
        oauth: OAuthSettings,
        store: Arc<dyn TokenStore>,
    ) -> Result<Arc<Self>, RoundtripError> {
        let settings = roundtrip::auth::OAuthConfig::discover(oauth.client_id, &oauth.issuer)?
            .scopes(oauth.scopes);
        let inner = builder(config)
            .oauth(settings)
            .token_store(Arc::new(ForeignStore(store)))
            .build()?;
        Ok(Arc::new(Client { inner }))
    }

    /// Signs in with a username and password (the password grant). Throws `OAuth` for wrong
    /// credentials, `InvalidInput` for a client built without a session.
    pub async fn sign_in_with_password(
        &self,
        username: String,
        password: String,
    ) -> Result<(), RoundtripError> {
        let session = self.session()?;
        let work = async move { Ok(session.sign_in_with_password(&username, &password).await?) };
        runtime::run(work, None).await
    }

    /// Signs out: revokes the session at the server (best effort) and forgets its tokens.
    pub async fn sign_out(&self) -> Result<(), RoundtripError> {
        let session = self.session()?;
        let work = async move { Ok(session.sign_out().await?) };
        runtime::run(work, None).await
    }

    /// Whether a user is signed in.
    pub fn is_signed_in(&self) -> bool {
        self.inner
            .session()
            .is_some_and(|session| session.is_signed_in())
    }

    /// Opens a realtime channel: a WebSocket at `config.path` under the base URL that
    /// authenticates like requests, reconnects by itself and queues messages while
    /// disconnected. Connection failures show up as state events, not as exceptions here.
    pub fn channel(&self, config: ChannelConfig) -> Result<Arc<Channel>, RoundtripError> {
        Channel::open(&self.inner, config)
    }

    /// Sends a request and returns its response; statuses of 400 and above throw `Http`.
    ///
    /// Cancelling the calling coroutine (Kotlin) cancels the request. Swift callers pass a
    /// `cancellation` token and cancel it when their task is cancelled; the Swift helpers do.
    #[uniffi::method(default(cancellation = None))]
    pub async fn send(
        &self,
        request: Request,
        cancellation: Option<Arc<CancellationToken>>,
    ) -> Result<Response, RoundtripError> {
        let mut builder = self.inner.request(request.method.into(), &request.path);
        if let Some(body) = request.body {
            // A Content-Type among the headers below replaces this generic one.
            builder = builder.body(body, "application/octet-stream");
        }
        for param in &request.query {
            builder = builder.query(&param.name, &param.value);
        }
        for header in &request.headers {
            builder = builder.header(&header.name, &header.value);
        }
        if let Some(ms) = request.timeout_ms {
            builder = builder.timeout(Duration::from_millis(ms));
        }
        if let Some(key) = request.idempotency_key {
            builder = builder.idempotency_key(key);
        }

        let work = async move { Ok(builder.send().await?.into()) };
        runtime::run(work, cancellation).await
    }

    /// Tells the client whether the device has a network. While offline, requests fail at once
    /// with `Offline`.
    pub fn set_online(&self, online: bool) {
        self.inner.set_online(online);
    }

    /// Whether the device was last reported online.
    pub fn is_online(&self) -> bool {
        self.inner.is_online()
    }
}

/// The core's builder for a configuration record.
fn builder(config: ClientConfig) -> roundtrip::ClientBuilder {
    let mut builder = roundtrip::Client::builder(&config.base_url)
        .allow_insecure_http(config.allow_insecure_http);
    if let Some(ms) = config.connect_timeout_ms {
        builder = builder.connect_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = config.request_timeout_ms {
        builder = builder.request_timeout(Duration::from_millis(ms));
    }
    if let Some(user_agent) = config.user_agent {
        builder = builder.user_agent(user_agent);
    }
    for header in &config.default_headers {
        builder = builder.default_header(&header.name, &header.value);
    }
    if let Some(dir) = config.storage_dir {
        builder = builder.storage_dir(dir);
    }
    if let Some(bytes) = config.max_response_body_bytes {
        builder = builder.max_response_body(bytes);
    }
    if let Some(retry) = config.retry {
        builder = builder.retry_policy(retry.into());
    }
    builder
}

impl Client {
    fn session(&self) -> Result<roundtrip::auth::Session, RoundtripError> {
        self.inner
            .session()
            .ok_or_else(|| RoundtripError::InvalidInput {
                reason: "the client was built without a session".to_owned(),
            })
    }
}
