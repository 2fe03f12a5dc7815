//! Records and enums that cross the FFI, and their conversions to and from the core's types.

use std::time::Duration;

use roundtrip::RetryPolicy;
use roundtrip::auth::Secret;

use crate::push::PushConfig;

/// One HTTP header.
///
/// Deliberately not `Debug`: header values carry credentials.
#[derive(uniffi::Record, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name, case-insensitive.
    pub name: String,
    /// The header's value.
    pub value: String,
}

/// One query parameter; percent-encoded by the SDK.
#[derive(uniffi::Record, Clone, Debug, PartialEq, Eq)]
pub struct QueryParam {
    /// The parameter's name.
    pub name: String,
    /// The parameter's value.
    pub value: String,
}

/// An HTTP method.
#[derive(uniffi::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET: read a resource.
    Get,
    /// POST: create or act; retried only with an idempotency key.
    Post,
    /// PUT: replace a resource.
    Put,
    /// PATCH: change part of a resource; retried only with an idempotency key.
    Patch,
    /// DELETE: remove a resource.
    Delete,
    /// HEAD: a GET without the body.
    Head,
}

/// How failed requests are retried. See the Rust `RetryPolicy` for the rules.
#[derive(uniffi::Record, Clone, Debug, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts in all, the first included. 1 disables retries.
    pub max_attempts: u32,
    /// Upper bound of the wait before the second attempt, doubling after that.
    pub initial_delay_ms: u64,
    /// Longest wait between two attempts.
    pub max_delay_ms: u64,
    /// Total time after which no further attempt starts.
    pub max_elapsed_ms: u64,
}

/// Fixed credentials for every request to the client's own origin.
///
/// Deliberately not `Debug`: it carries secrets.
#[derive(uniffi::Enum, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// An API key sent in a header, such as `X-Api-Key`.
    ApiKeyHeader {
        /// The header's name.
        name: String,
        /// The key.
        key: String,
    },
    /// An API key sent as a query parameter, such as `api_key`.
    ApiKeyQuery {
        /// The parameter's name.
        name: String,
        /// The key.
        key: String,
    },
    /// A bearer token the app obtained itself, sent as `Authorization: Bearer`.
    BearerToken {
        /// The token.
        token: String,
    },
}

/// Settings for a [`crate::Client`]. Only `base_url` is required.
#[derive(uniffi::Record, Clone)]
pub struct ClientConfig {
    /// The backend's base URL; relative request paths are appended to its path.
    pub base_url: String,
    /// How long to wait for a connection. Default: 10 s.
    #[uniffi(default = None)]
    pub connect_timeout_ms: Option<u64>,
    /// How long one attempt may take, body included. Default: 30 s.
    #[uniffi(default = None)]
    pub request_timeout_ms: Option<u64>,
    /// The `User-Agent` header. Default: `roundtrip/<version>`.
    #[uniffi(default = None)]
    pub user_agent: Option<String>,
    /// Headers sent with every request.
    #[uniffi(default)]
    pub default_headers: Vec<Header>,
    /// Where the SDK may keep files; created if missing.
    #[uniffi(default = None)]
    pub storage_dir: Option<String>,
    /// Allow plain `http://` to hosts other than loopback.
    #[uniffi(default = false)]
    pub allow_insecure_http: bool,
    /// Largest response body read, in bytes. Default: 16 MiB.
    #[uniffi(default = None)]
    pub max_response_body_bytes: Option<u64>,
    /// Retry settings. Default: 3 attempts within 30 s.
    #[uniffi(default = None)]
    pub retry: Option<RetryConfig>,
    /// The HTTP cache's size budget in bytes (default 20 MiB); 0 turns the cache off.
    #[uniffi(default = None)]
    pub cache_size_bytes: Option<u64>,
    /// Credentials for every request to the base URL's origin. Default: none.
    #[uniffi(default = None)]
    pub credentials: Option<Credentials>,
    /// Registers the device for push notifications (see `Client.push()`). Default: off.
    #[uniffi(default = None)]
    pub push: Option<PushConfig>,
    /// An OAuth 2.0 session for the client's requests.
    #[uniffi(default = None)]
    pub oauth: Option<crate::session::OAuthSettings>,
}

/// One request.
#[derive(uniffi::Record, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// A path relative to the base URL, or an absolute URL.
    pub path: String,
    /// Query parameters, appended in order.
    #[uniffi(default)]
    pub query: Vec<QueryParam>,
    /// Headers; they replace default headers of the same name.
    #[uniffi(default)]
    pub headers: Vec<Header>,
    /// The body, sent as it is; set a `Content-Type` header with it.
    #[uniffi(default = None)]
    pub body: Option<Vec<u8>>,
    /// Overrides the client's request timeout.
    #[uniffi(default = None)]
    pub timeout_ms: Option<u64>,
    /// Sent as `Idempotency-Key`; makes a POST or PATCH safe to retry.
    #[uniffi(default = None)]
    pub idempotency_key: Option<String>,
    /// How the request uses the HTTP cache; `null`/`nil` is `CachePolicy.DEFAULT`.
    #[uniffi(default = None)]
    pub cache_policy: Option<CachePolicy>,
}

/// How one request uses the HTTP cache.
#[derive(uniffi::Enum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CachePolicy {
    /// RFC 9111: fresh responses from the cache, stale ones revalidated.
    #[default]
    Default,
    /// Always check with the server (conditionally when something is stored).
    AlwaysRevalidate,
    /// Only what is stored, fresh or stale; `NotCached` otherwise. For offline reading.
    CacheOnly,
    /// Neither read nor write the cache.
    Bypass,
}

/// How a response relates to the cache.
#[derive(uniffi::Record, Clone, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    /// Whether it was served from the cache (true) or by the server for this request.
    pub from_cache: bool,
    /// Whether it is past its freshness lifetime.
    pub stale: bool,
    /// Whether the server confirmed the stored response with a 304 for this request.
    pub revalidated: bool,
    /// Its age in seconds, when served from the cache.
    pub age_secs: Option<u64>,
}

/// A successful response (status below 400).
#[derive(uniffi::Record, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The headers, in the order received.
    pub headers: Vec<Header>,
    /// The whole body.
    pub body: Vec<u8>,
    /// The URL that answered, after redirects, without its query string.
    pub url: String,
    /// Network attempts the request took: 1 without retries, 0 when served from the cache.
    pub attempts: u32,
    /// Whether the response came from the cache, is stale, was revalidated.
    pub cache: CacheInfo,
}

/// Problem Details (RFC 9457) sent by the server with an error status.
#[derive(uniffi::Record, Clone, Debug, PartialEq)]
pub struct Problem {
    /// The problem type URI; `about:blank` when the server gave none.
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: Option<String>,
    /// The status the server generated.
    pub status: Option<u16>,
    /// Explanation of this occurrence.
    pub detail: Option<String>,
    /// URI of this occurrence.
    pub instance: Option<String>,
    /// The other members, as a JSON object.
    pub extensions_json: String,
}

impl From<Method> for roundtrip::Method {
    fn from(method: Method) -> Self {
        match method {
            Method::Get => roundtrip::Method::Get,
            Method::Post => roundtrip::Method::Post,
            Method::Put => roundtrip::Method::Put,
            Method::Patch => roundtrip::Method::Patch,
            Method::Delete => roundtrip::Method::Delete,
            Method::Head => roundtrip::Method::Head,
        }
    }
}

impl From<Credentials> for roundtrip::auth::Credentials {
    fn from(credentials: Credentials) -> Self {
        match credentials {
            Credentials::ApiKeyHeader { name, key } => roundtrip::auth::Credentials::ApiKeyHeader {
                name,
                key: Secret::new(key),
            },
            Credentials::ApiKeyQuery { name, key } => roundtrip::auth::Credentials::ApiKeyQuery {
                name,
                key: Secret::new(key),
            },
            Credentials::BearerToken { token } => {
                roundtrip::auth::Credentials::BearerToken(Secret::new(token))
            }
        }
    }
}

impl From<RetryConfig> for RetryPolicy {
    fn from(config: RetryConfig) -> Self {
        RetryPolicy::default()
            .max_attempts(config.max_attempts)
            .initial_delay(Duration::from_millis(config.initial_delay_ms))
            .max_delay(Duration::from_millis(config.max_delay_ms))
            .max_elapsed(Duration::from_millis(config.max_elapsed_ms))
    }
}

impl From<roundtrip::Response> for Response {
    fn from(response: roundtrip::Response) -> Self {
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| Header {
                name: name.as_str().to_owned(),
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            })
            .collect();
        let mut url = response.url().clone();
        url.set_query(None);

        let info = response.cache();
        let cache = CacheInfo {
            from_cache: info.source == roundtrip::CacheSource::Cache,
            stale: info.stale,
            revalidated: info.revalidated,
            age_secs: info.age.map(|age| age.as_secs()),
        };
        Response {
            cache,
            status: response.status(),
            headers,
            url: url.to_string(),
            attempts: response.attempts(),
            body: response.into_bytes().into(),
        }
    }
}

impl From<&roundtrip::Problem> for Problem {
    fn from(problem: &roundtrip::Problem) -> Self {
        Problem {
            type_uri: problem.problem_type.clone(),
            title: problem.title.clone(),
            status: problem.status,
            detail: problem.detail.clone(),
            instance: problem.instance.clone(),
            extensions_json: serde_json::Value::Object(problem.extensions.clone()).to_string(),
        }
    }
}

impl From<CachePolicy> for roundtrip::CachePolicy {
    fn from(policy: CachePolicy) -> Self {
        match policy {
            CachePolicy::Default => roundtrip::CachePolicy::Default,
            CachePolicy::AlwaysRevalidate => roundtrip::CachePolicy::AlwaysRevalidate,
            CachePolicy::CacheOnly => roundtrip::CachePolicy::CacheOnly,
            CachePolicy::Bypass => roundtrip::CachePolicy::Bypass,
        }
    }
}
