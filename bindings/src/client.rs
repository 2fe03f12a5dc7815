//! The client object.

use std::sync::Arc;
use std::time::Duration;

use crate::RoundtripError;
use crate::push::Push;
use crate::realtime::{Channel, ChannelConfig};
use crate::runtime::{self, CancellationToken};
use crate::session::{
    self, AuthorizationRequest, DeviceAuthorization, SessionListener, Subscription, TokenStore,
};
use crate::types::{ClientConfig, Request, Response};

/// A connection to one backend. Create one per backend and keep it for the life of the app.
#[derive(uniffi::Object)]
pub struct Client {
    inner: roundtrip::Client,
}

#[uniffi::export]
impl Client {
    /// Builds a client. Fails with `InvalidInput` or `InsecureTransport` for a bad configuration.
    ///
    /// With `oauth` settings, tokens are kept in `token_store` when given, otherwise in the
    /// platform's secure store (keychain on Apple platforms, kernel keyring on Linux). Android
    /// apps pass a store backed by the Android Keystore.
    #[uniffi::constructor(default(token_store = None))]
    pub fn new(
        config: ClientConfig,
        token_store: Option<Arc<dyn TokenStore>>,
    ) -> Result<Arc<Self>, RoundtripError> {
        // Background work the client starts (push registration) runs on the bindings' runtime.
        let _runtime = runtime::enter();
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
        match config.cache_size_bytes {
            Some(0) => builder = builder.disable_cache(),
            Some(bytes) => builder = builder.cache_size(bytes),
            None => {}
        }
        if let Some(retry) = config.retry {
            builder = builder.retry_policy(retry.into());
        }
        if let Some(credentials) = config.credentials {
            builder = builder.credentials(credentials.into());
        }
        if let Some(push) = config.push {
            builder = builder.push(push.into());
        }

        if let Some(settings) = config.oauth {
            builder = builder.oauth(session::oauth_config(settings)?);
        }
        if let Some(store) = token_store {
            builder = builder.token_store(Arc::new(session::ForeignStore(store)));
        }

        let inner = builder.build()?;
        Ok(Arc::new(Client { inner }))
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
        if let Some(policy) = request.cache_policy {
            builder = builder.cache_policy(policy.into());
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

    /// Whether a user is signed in.
    pub fn is_signed_in(&self) -> bool {
        self.inner
            .session()
            .is_some_and(|session| session.is_signed_in())
    }

    /// Signs in with a username and password (first-party apps).
    pub async fn sign_in_with_password(
        &self,
        username: String,
        password: String,
    ) -> Result<(), RoundtripError> {
        let session = self.session()?;
        runtime::run(
            async move { Ok(session.sign_in_with_password(&username, &password).await?) },
            None,
        )
        .await
    }

    /// Builds the URL to open in the system browser for an authorization code sign-in.
    pub async fn authorization_url(&self) -> Result<AuthorizationRequest, RoundtripError> {
        let session = self.session()?;
        let work = async move {
            Ok(session::authorization_request(
                session.authorization_url().await?,
            ))
        };
        runtime::run(work, None).await
    }

    /// Completes a browser sign-in from the redirect URL the app received.
    pub async fn complete_authorization(&self, redirect_url: String) -> Result<(), RoundtripError> {
        let session = self.session()?;
        let work = async move { Ok(session.complete_authorization(&redirect_url).await?) };
        runtime::run(work, None).await
    }

    /// Starts a device sign-in; show the user its code and URI.
    pub async fn start_device_authorization(
        &self,
    ) -> Result<Arc<DeviceAuthorization>, RoundtripError> {
        let session = self.session()?;
        let work = async move { Ok(session::device(session.start_device_authorization().await?)) };
        runtime::run(work, None).await
    }

    /// Waits until the user approves the device sign-in (or denies it, or it expires).
    pub async fn complete_device_authorization(
        &self,
        device: Arc<DeviceAuthorization>,
    ) -> Result<(), RoundtripError> {
        let session = self.session()?;
        let device = session::device_inner(&device);
        let work = async move { Ok(session.complete_device_authorization(&device).await?) };
        runtime::run(work, None).await
    }

    /// Signs out: revokes the tokens at the server (best effort) and forgets them.
    pub async fn sign_out(&self) -> Result<(), RoundtripError> {
        let session = self.session()?;
        runtime::run(async move { Ok(session.sign_out().await?) }, None).await
    }

    /// Sends every session event to `listener` until the subscription is cancelled.
    pub fn subscribe_session_events(
        &self,
        listener: Arc<dyn SessionListener>,
    ) -> Result<Arc<Subscription>, RoundtripError> {
        Ok(Arc::new(session::subscribe(self.session()?, listener)))
    }

    /// The push registration of this device, when `ClientConfig.push` was set.
    pub fn push(&self) -> Option<Arc<Push>> {
        self.inner.push().map(Push::new)
    }
}

impl Client {
    fn session(&self) -> Result<roundtrip::auth::Session, RoundtripError> {
        self.inner
            .session()
            .ok_or_else(|| RoundtripError::InvalidInput {
                reason: "the client was built without OAuth settings".into(),
            })
    }
}
