//! The client and its builder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use url::Url;

use crate::auth::{
    Credentials, Engine, KeychainStore, OAuthConfig, OAuthFlows, RefreshRules, Session,
    SessionHook, SystemClock, TokenStore,
};
use crate::cache::{HttpCache, SESSION_PARTITION};
use crate::connectivity::Connectivity;
use crate::internal::error::Failure;
use crate::internal::{redact, transport};
use crate::push::{Push, PushConfig, PushShared};
use crate::realtime::ChannelBuilder;
use crate::{Error, Method, RequestBuilder, RetryPolicy};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_RESPONSE_BODY: u64 = 16 * 1024 * 1024;
const DEFAULT_CACHE_SIZE: u64 = 20 * 1024 * 1024;

/// A connection to one backend: the entry point of the SDK.
///
/// Cheap to clone; clones share connections, configuration and connectivity state. Build one
/// with [`Client::builder`] and keep it for the life of the app.
///
/// ```no_run
/// # async fn run() -> Result<(), roundtrip::Error> {
/// use std::time::Duration;
///
/// let client = roundtrip::Client::builder("https://api.example.com/v1")
///     .request_timeout(Duration::from_secs(20))
///     .build()?;
///
/// let todos: Vec<serde_json::Value> = client.get("/todos").send().await?.json()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
}

/// What every request of a client reads.
pub(crate) struct Shared {
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: Url,
    pub(crate) default_headers: HeaderMap,
    pub(crate) request_timeout: Duration,
    pub(crate) max_response_body: u64,
    pub(crate) allow_insecure_http: bool,
    pub(crate) retry: RetryPolicy,
    pub(crate) connectivity: Connectivity,
    pub(crate) storage_dir: Option<PathBuf>,
    pub(crate) auth: Option<Auth>,
    /// TLS for realtime channels: the HTTP configuration, offering HTTP/1.1 only.
    pub(crate) websocket_tls: Arc<rustls::ClientConfig>,
    pub(crate) connect_timeout: Duration,
    pub(crate) user_agent: String,
    pub(crate) push: Option<Arc<PushShared>>,
    pub(crate) cache: Option<HttpCache>,
}

impl Shared {
    /// The cache partition of the credentials in use: one per sign-in, one per static
    /// credential, one for anonymous requests.
    pub(crate) fn partition(&self) -> String {
        match &self.auth {
            None => "anonymous".to_owned(),
            Some(Auth::OAuth(engine)) => match engine.session_id() {
                Some(id) => format!("{SESSION_PARTITION}{id}"),
                None => "signed-out".to_owned(),
            },
            Some(Auth::Static(credentials)) => {
                let secret = match credentials {
                    Credentials::ApiKeyHeader { key, .. }
                    | Credentials::ApiKeyQuery { key, .. } => key,
                    Credentials::BearerToken(token) => token,
                };
                let hex = crate::internal::digest::sha256_hex(secret.expose().as_bytes());
                format!("credential:{}", &hex[..32])
            }
        }
    }
}

/// How requests of a client are authenticated.
pub(crate) enum Auth {
    Static(Credentials),
    OAuth(Arc<Engine>),
}

impl Client {
    /// Starts building a client for the backend at `base_url`.
    ///
    /// Relative request paths are appended to this URL's path, so a base of
    /// `https://api.example.com/v1` and a path of `/todos` give `https://api.example.com/v1/todos`.
    pub fn builder(base_url: impl AsRef<str>) -> ClientBuilder {
        ClientBuilder::new(base_url.as_ref())
    }

    /// Starts a request with the given method. `target` is a path relative to the base URL, or
    /// an absolute URL.
    pub fn request(&self, method: Method, target: &str) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, target)
    }

    /// Starts a GET request.
    pub fn get(&self, target: &str) -> RequestBuilder {
        self.request(Method::Get, target)
    }

    /// Starts a POST request. It is retried only if it has an idempotency key.
    pub fn post(&self, target: &str) -> RequestBuilder {
        self.request(Method::Post, target)
    }

    /// Starts a PUT request.
    pub fn put(&self, target: &str) -> RequestBuilder {
        self.request(Method::Put, target)
    }

    /// Starts a PATCH request. It is retried only if it has an idempotency key.
    pub fn patch(&self, target: &str) -> RequestBuilder {
        self.request(Method::Patch, target)
    }

    /// Starts a DELETE request.
    pub fn delete(&self, target: &str) -> RequestBuilder {
        self.request(Method::Delete, target)
    }

    /// Starts a HEAD request.
    pub fn head(&self, target: &str) -> RequestBuilder {
        self.request(Method::Head, target)
    }

    /// Starts describing a realtime channel: a WebSocket at `target`, a path relative to the
    /// base URL like a request's (`https` becomes `wss`, `http` becomes `ws`).
    ///
    /// ```no_run
    /// # async fn run(client: roundtrip::Client) -> Result<(), roundtrip::Error> {
    /// use futures_util::StreamExt;
    /// use roundtrip::realtime::ChannelEvent;
    ///
    /// let channel = client.channel("/ws").subprotocol("chat.v1").open()?;
    /// let mut events = std::pin::pin!(channel.events());
    /// channel.send_text("hello")?; // queued until connected, then sent in order
    /// while let Some(event) = events.next().await {
    ///     if let ChannelEvent::Message(message) = event {
    ///         println!("{message:?}");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn channel(&self, target: &str) -> ChannelBuilder {
        ChannelBuilder::new(self.clone(), target)
    }

    /// Tells the client whether the device has a network.
    ///
    /// While offline, requests fail at once with [`Error::Offline`] and retry waits end early.
    pub fn set_online(&self, online: bool) {
        self.shared.connectivity.set_online(online);
    }

    /// Whether the device was last reported online. A new client assumes it is.
    pub fn is_online(&self) -> bool {
        self.shared.connectivity.is_online()
    }

    /// The shared connectivity state, for components that react to network changes.
    pub fn connectivity(&self) -> &Connectivity {
        &self.shared.connectivity
    }

    /// The OAuth session, when the client was built with
    /// [`ClientBuilder::oauth`].
    pub fn session(&self) -> Option<Session> {
        match &self.shared.auth {
            Some(Auth::OAuth(engine)) => Some(Session {
                engine: Arc::clone(engine),
            }),
            _ => None,
        }
    }

    /// The push registration of this device, when the client was built with
    /// [`ClientBuilder::push`].
    pub fn push(&self) -> Option<Push> {
        self.shared.push.as_ref().map(|inner| Push {
            inner: Arc::clone(inner),
        })
    }

    /// The base URL that relative request paths are resolved against.
    pub fn base_url(&self) -> &Url {
        &self.shared.base_url
    }

    /// The directory where the SDK keeps its files, if one was configured.
    pub fn storage_dir(&self) -> Option<&Path> {
        self.shared.storage_dir.as_deref()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &redact::url(&self.shared.base_url))
            .field("online", &self.is_online())
            .finish_non_exhaustive()
    }
}

/// Configures and builds a [`Client`].
///
/// Setters never fail; the first invalid value is reported by [`ClientBuilder::build`].
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    user_agent: String,
    default_headers: HeaderMap,
    storage_dir: Option<PathBuf>,
    allow_insecure_http: bool,
    max_response_body: u64,
    retry: RetryPolicy,
    extra_roots: Vec<CertificateDer<'static>>,
    credentials: Option<Credentials>,
    oauth: Option<OAuthConfig>,
    token_store: Option<Arc<dyn TokenStore>>,
    refresh_rules: RefreshRules,
    cache_size: Option<u64>,
    push: Option<PushConfig>,
    error: Option<Failure>,
}

impl ClientBuilder {
    fn new(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            user_agent: concat!("roundtrip/", env!("CARGO_PKG_VERSION")).to_owned(),
            default_headers: HeaderMap::new(),
            storage_dir: None,
            allow_insecure_http: false,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            retry: RetryPolicy::default(),
            extra_roots: Vec::new(),
            credentials: None,
            oauth: None,
            token_store: None,
            refresh_rules: RefreshRules::default(),
            cache_size: Some(DEFAULT_CACHE_SIZE),
            push: None,
            error: None,
        }
    }

    /// Registers this device for push notifications with the backend and keeps the
    /// registration correct, through [`Client::push`]. Its state lives in `push.sqlite3` in the
    /// [storage directory](ClientBuilder::storage_dir); give the client one, or the installation
    /// id changes at every start.
    pub fn push(mut self, config: PushConfig) -> ClientBuilder {
        self.push = Some(config);
        self
    }

    /// Authenticates every request to the client's own origin with an API key or a fixed
    /// bearer token.
    pub fn credentials(mut self, credentials: Credentials) -> ClientBuilder {
        self.credentials = Some(credentials);
        self
    }

    /// Authenticates requests with an OAuth 2.0 session, driven through
    /// [`Client::session`]. A session stored by an earlier run is picked up.
    pub fn oauth(mut self, config: OAuthConfig) -> ClientBuilder {
        self.refresh_rules.margin = config.refresh_margin;
        self.oauth = Some(config);
        self
    }

    /// Where the OAuth session's tokens are kept. Default: the platform's secure store
    /// ([`KeychainStore`]); on Android, supply one backed by the Android Keystore.
    pub fn token_store(mut self, store: Arc<dyn TokenStore>) -> ClientBuilder {
        self.token_store = Some(store);
        self
    }

    /// The HTTP cache's size budget in bytes; least recently used responses are evicted beyond
    /// it. Default: 20 MiB. The cache lives in `cache.sqlite3` in the storage directory, or in
    /// memory when there is none.
    pub fn cache_size(mut self, bytes: u64) -> ClientBuilder {
        self.cache_size = Some(bytes);
        self
    }

    /// Turns the HTTP cache off: every request goes to the network and nothing is stored.
    pub fn disable_cache(mut self) -> ClientBuilder {
        self.cache_size = None;
        self
    }

    /// Limits token refreshes to `max` within `window`; more fail fast with
    /// [`Error::RefreshThrottled`]. Default: 5 per minute.
    pub fn refresh_limit(mut self, max: usize, window: Duration) -> ClientBuilder {
        self.refresh_rules.max_refreshes = max.max(1);
        self.refresh_rules.window = window;
        self
    }

    /// How long to wait for a connection to be established. Default: 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// How long one attempt of a request may take, from sending it to reading the whole body.
    /// Default: 30 s. A request can override it with
    /// [`RequestBuilder::timeout`](crate::RequestBuilder::timeout).
    pub fn request_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.request_timeout = timeout;
        self
    }

    /// The `User-Agent` sent with every request. Default: `roundtrip/<version>`.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> ClientBuilder {
        self.user_agent = user_agent.into();
        self
    }

    /// A header sent with every request, unless the request sets the same header itself.
    ///
    /// Values of credential headers (`Authorization`, `Cookie`, names with `token`, `api-key`,
    /// `secret`...) are marked sensitive and never appear in `Debug` output or logs.
    pub fn default_header(mut self, name: &str, value: &str) -> ClientBuilder {
        match parse_header(name, value) {
            Ok((name, value)) => {
                self.default_headers.insert(name, value);
            }
            Err(failure) => self.keep_first_error(failure),
        }
        self
    }

    /// The directory where the SDK may keep its files (cache, state). Created if missing.
    pub fn storage_dir(mut self, dir: impl Into<PathBuf>) -> ClientBuilder {
        self.storage_dir = Some(dir.into());
        self
    }

    /// Allows plain `http://` to hosts other than loopback. Off by default; meant for development
    /// servers on a local network. Loopback (`127.0.0.0/8`, `::1`, `localhost`) is always allowed.
    pub fn allow_insecure_http(mut self, allow: bool) -> ClientBuilder {
        self.allow_insecure_http = allow;
        self
    }

    /// The largest response body the client reads, in bytes; larger ones fail with
    /// [`Error::BodyTooLarge`]. Default: 16 MiB.
    pub fn max_response_body(mut self, bytes: u64) -> ClientBuilder {
        self.max_response_body = bytes;
        self
    }

    /// How failed requests are retried. Default: [`RetryPolicy::default`].
    pub fn retry_policy(mut self, policy: RetryPolicy) -> ClientBuilder {
        self.retry = policy;
        self
    }

    /// Trusts the certificates in a PEM document as roots, in addition to the built-in Mozilla
    /// roots: for backends behind a private certificate authority.
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> ClientBuilder {
        let mut found = 0;
        for certificate in CertificateDer::pem_slice_iter(pem) {
            match certificate {
                Ok(certificate) => {
                    self.extra_roots.push(certificate);
                    found += 1;
                }
                Err(error) => {
                    let message = format!("root certificate PEM: {error}");
                    self.keep_first_error(Failure::Invalid(message));
                }
            }
        }
        if found == 0 {
            self.keep_first_error(Failure::Invalid(
                "no certificate in the PEM document".into(),
            ));
        }
        self
    }

    /// Builds the client, or reports the first invalid setting.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(failure) = self.error {
            return Err(failure.into());
        }

        let base_url = Url::parse(&self.base_url).map_err(Failure::from)?;
        if base_url.cannot_be_a_base() || base_url.host().is_none() {
            let message = format!("base URL `{}` has no host", redact::url(&base_url));
            return Err(Failure::Invalid(message).into());
        }
        transport::check_security(&base_url, self.allow_insecure_http)?;

        if let Some(dir) = &self.storage_dir {
            std::fs::create_dir_all(dir).map_err(Failure::from)?;
        }

        let websocket_tls = transport::websocket_tls(self.extra_roots.clone())?;
        let http = transport::build(transport::TransportConfig {
            connect_timeout: self.connect_timeout,
            user_agent: self.user_agent.clone(),
            allow_insecure_http: self.allow_insecure_http,
            extra_roots: self.extra_roots,
        })?;

        let auth = match (self.credentials, self.oauth) {
            (Some(_), Some(_)) => {
                let message = "a client takes credentials or an OAuth session, not both";
                return Err(Failure::Invalid(message.into()).into());
            }
            (Some(credentials), None) => {
                check_credentials(&credentials)?;
                Some(Auth::Static(credentials))
            }
            (None, Some(config)) => {
                let store = match self.token_store {
                    Some(store) => store,
                    None => {
                        let account = config.store_account(&base_url);
                        Arc::new(KeychainStore::new("dev.roundtrip.session", &account)?)
                    }
                };
                let flows = OAuthFlows::new(http.clone(), config, self.allow_insecure_http);
                let engine = Engine::new(flows, store, Arc::new(SystemClock), self.refresh_rules);
                Some(Auth::OAuth(Arc::new(engine)))
            }
            (None, None) => None,
        };

        let cache = match self.cache_size {
            Some(size) => Some(HttpCache::open(self.storage_dir.as_deref(), size)?),
            None => None,
        };

        // The push component reaches the client through a weak reference, since the client
        // holds the component.
        let mut push = Ok(None);
        let shared = Arc::new_cyclic(|client| {
            if let Some(config) = self.push {
                let dir = self.storage_dir.as_deref();
                push = PushShared::open(config, dir, client.clone()).map(Some);
            }
            Shared {
                http,
                base_url,
                default_headers: self.default_headers,
                request_timeout: self.request_timeout,
                max_response_body: self.max_response_body,
                allow_insecure_http: self.allow_insecure_http,
                retry: self.retry,
                connectivity: Connectivity::default(),
                storage_dir: self.storage_dir,
                auth,
                cache,
                push: push.as_ref().ok().cloned().flatten(),
                websocket_tls,
                connect_timeout: self.connect_timeout,
                user_agent: self.user_agent,
            }
        });
        push?;

        if let (Some(cache), Some(Auth::OAuth(engine))) = (&shared.cache, &shared.auth) {
            engine.add_hook(Arc::new(cache.clone()) as Arc<dyn SessionHook>);
        }
        if let Some(push) = &shared.push {
            if let Some(Auth::OAuth(engine)) = &shared.auth {
                engine.add_hook(Arc::clone(push) as Arc<dyn SessionHook>);
            }
            push.start();
        }
        Ok(Client { shared })
    }

    fn keep_first_error(&mut self, failure: Failure) {
        self.error.get_or_insert(failure);
    }
}

fn check_credentials(credentials: &Credentials) -> Result<(), Failure> {
    match credentials {
        Credentials::ApiKeyHeader { name, key } => parse_header(name, key.expose()).map(|_| ()),
        Credentials::BearerToken(token) => {
            parse_header("authorization", &format!("Bearer {}", token.expose())).map(|_| ())
        }
        Credentials::ApiKeyQuery { name, .. } if name.is_empty() => Err(Failure::Invalid(
            "the API key parameter needs a name".into(),
        )),
        Credentials::ApiKeyQuery { .. } => Ok(()),
    }
}

/// Parses a header, marking credentials sensitive so that `Debug` never shows them.
pub(crate) fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Failure> {
    let name = HeaderName::from_bytes(name.as_bytes())?;
    let mut value = HeaderValue::from_str(value)?;
    if redact::is_sensitive_header(&name) {
        value.set_sensitive(true);
    }
    Ok((name, value))
}
