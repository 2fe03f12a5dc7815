//! The client object.

use std::sync::Arc;
use std::time::Duration;

use crate::RoundtripError;
use crate::push::Push;
use crate::runtime::{self, CancellationToken};
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
        if let Some(retry) = config.retry {
            builder = builder.retry_policy(retry.into());
        }
        if let Some(credentials) = config.credentials {
            builder = builder.credentials(credentials.into());
        }
        if let Some(push) = config.push {
            builder = builder.push(push.into());
        }

        let inner = builder.build()?;
        Ok(Arc::new(Client { inner }))
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

    /// The push registration of this device, when `ClientConfig.push` was set.
    pub fn push(&self) -> Option<Arc<Push>> {
        self.inner.push().map(Push::new)
    }
}
