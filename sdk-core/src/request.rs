//! Requests: the method, and the builder that describes one call.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde::Serialize;
use url::Url;

use crate::cache::CachePolicy;
use crate::internal::error::Failure;
use crate::internal::pipeline::{self, Prepared};
use crate::internal::redact;
use crate::{Client, Error, Response, RetryPolicy};

/// An HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// GET: read a resource.
    Get,
    /// POST: create or act; not idempotent.
    Post,
    /// PUT: replace a resource; idempotent.
    Put,
    /// PATCH: change part of a resource; not idempotent.
    Patch,
    /// DELETE: remove a resource; idempotent.
    Delete,
    /// HEAD: a GET without the body.
    Head,
    /// OPTIONS: ask what the resource supports.
    Options,
}

impl Method {
    /// Whether repeating the request has the same effect as making it once (RFC 9110, 9.2.2).
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Method::Post | Method::Patch)
    }

    /// The method's name as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        }
    }

    pub(crate) fn to_http(self) -> http::Method {
        match self {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
            Method::Delete => http::Method::DELETE,
            Method::Head => http::Method::HEAD,
            Method::Options => http::Method::OPTIONS,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request being described. Send it with [`RequestBuilder::send`], or `.await` it directly.
///
/// Dropping the future returned by `send` cancels the request: the connection is closed and no
/// further attempt is made.
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    client: Client,
    method: Method,
    target: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Option<Bytes>,
    timeout: Option<Duration>,
    idempotency_key: Option<String>,
    retry: Option<RetryPolicy>,
    cache_policy: CachePolicy,
    authenticate: bool,
    error: Option<Failure>,
}

impl RequestBuilder {
    pub(crate) fn new(client: Client, method: Method, target: &str) -> RequestBuilder {
        RequestBuilder {
            client,
            method,
            target: target.to_owned(),
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
            idempotency_key: None,
            retry: None,
            cache_policy: CachePolicy::Default,
            authenticate: true,
            error: None,
        }
    }

    /// Sends the request without the client's credentials, for calls that must work signed out
    /// (push unregisters a device that way after its user signed out).
    pub(crate) fn without_credentials(mut self) -> RequestBuilder {
        self.authenticate = false;
        self
    }

    /// Adds a query parameter. Names and values are percent-encoded as needed.
    pub fn query(mut self, name: &str, value: &str) -> RequestBuilder {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets a header, replacing a default header of the same name.
    pub fn header(mut self, name: &str, value: &str) -> RequestBuilder {
        match crate::client::parse_header(name, value) {
            Ok((name, value)) => {
                self.headers.insert(name, value);
            }
            Err(failure) => self.keep_first_error(failure),
        }
        self
    }

    /// Sets `Authorization: Bearer <token>`.
    pub fn bearer_auth(self, token: &str) -> RequestBuilder {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Serializes `value` as the JSON body and sets `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> RequestBuilder {
        match serde_json::to_vec(value) {
            Ok(body) => {
                self.body = Some(body.into());
                self.set_content_type("application/json");
            }
            Err(error) => self.keep_first_error(Failure::Encode(error)),
        }
        self
    }

    /// Sets a raw body with its content type.
    pub fn body(mut self, body: impl Into<Bytes>, content_type: &str) -> RequestBuilder {
        self.body = Some(body.into());
        self.set_content_type(content_type);
        self
    }

    /// Overrides the client's request timeout for this request (each attempt).
    pub fn timeout(mut self, timeout: Duration) -> RequestBuilder {
        self.timeout = Some(timeout);
        self
    }

    /// Sends `Idempotency-Key: <key>` with every attempt, so that the server applies the request
    /// once however many times it arrives. This is what makes a POST or PATCH safe to retry.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> RequestBuilder {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Like [`RequestBuilder::idempotency_key`] with a fresh random key (128 bits, hex).
    pub fn generated_idempotency_key(self) -> RequestBuilder {
        let key = format!("{:032x}", fastrand::u128(..));
        self.idempotency_key(key)
    }

    /// Overrides the client's retry policy for this request.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> RequestBuilder {
        self.retry = Some(policy);
        self
    }

    /// How this request uses the HTTP cache. Default: [`CachePolicy::Default`].
    pub fn cache_policy(mut self, policy: CachePolicy) -> RequestBuilder {
        self.cache_policy = policy;
        self
    }

    /// Sends the request, retrying as the policy allows, and returns the response once its body
    /// has been read. Statuses of 400 and above are returned as [`Error::Http`].
    pub async fn send(self) -> Result<Response, Error> {
        let client = self.client.clone();
        let prepared = self.prepare()?;
        pipeline::execute(&client.shared, prepared).await
    }

    fn prepare(self) -> Result<Prepared, Failure> {
        if let Some(failure) = self.error {
            return Err(failure);
        }

        let shared = &self.client.shared;
        let mut url = resolve(&shared.base_url, &self.target)?;
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.query);
        }

        let mut headers = shared.default_headers.clone();
        headers.extend(self.headers);
        if let Some(key) = &self.idempotency_key {
            let (name, value) = crate::client::parse_header("idempotency-key", key)?;
            headers.insert(name, value);
        }

        Ok(Prepared {
            method: self.method,
            url,
            headers,
            body: self.body,
            timeout: self.timeout.unwrap_or(shared.request_timeout),
            retry: self.retry.unwrap_or_else(|| shared.retry.clone()),
            has_idempotency_key: self.idempotency_key.is_some(),
            cache_policy: self.cache_policy,
            authenticate: self.authenticate,
        })
    }

    fn set_content_type(&mut self, content_type: &str) {
        match http::HeaderValue::from_str(content_type) {
            Ok(value) => {
                self.headers.insert(CONTENT_TYPE, value);
            }
            Err(error) => self.keep_first_error(error.into()),
        }
    }

    fn keep_first_error(&mut self, failure: Failure) {
        self.error.get_or_insert(failure);
    }
}

impl IntoFuture for RequestBuilder {
    type Output = Result<Response, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("target", &self.target.split('?').next().unwrap_or_default())
            .field("headers", &self.headers)
            .field("body_len", &self.body.as_ref().map(Bytes::len))
            .finish_non_exhaustive()
    }
}

/// Resolves a request target against the base URL.
///
/// An absolute URL is used as it is. A path is appended to the base URL's path, whether or not
/// either has a slash at the join, and may carry its own query string.
pub(crate) fn resolve(base: &Url, target: &str) -> Result<Url, Failure> {
    if let Ok(absolute) = Url::parse(target) {
        return Ok(absolute);
    }

    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let base_path = base.path().trim_end_matches('/');
    let mut url = base.clone();
    url.set_path(&format!("{base_path}/{}", path.trim_start_matches('/')));
    url.set_query(query);
    url.set_fragment(None);

    // The URL parser folds `..` segments away; what is left must still lie under the base.
    let inside = url.path() == base_path || url.path().starts_with(&format!("{base_path}/"));
    if !inside {
        let message = format!("request path `{}` leaves the base URL", redact::url(&url));
        return Err(Failure::Invalid(message));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(base: &str, target: &str) -> String {
        resolve(&Url::parse(base).unwrap(), target)
            .unwrap()
            .to_string()
    }

    #[test]
    fn test_paths_are_appended_to_the_base_path() {
        assert_eq!(
            join("https://a.example/v1", "/todos"),
            "https://a.example/v1/todos"
        );
        assert_eq!(
            join("https://a.example/v1/", "todos"),
            "https://a.example/v1/todos"
        );
        assert_eq!(
            join("https://a.example", "/todos/1"),
            "https://a.example/todos/1"
        );
        assert_eq!(join("https://a.example/", ""), "https://a.example/");
    }

    #[test]
    fn test_target_may_carry_a_query_string() {
        assert_eq!(
            join("https://a.example/v1?x=1", "/t?done=true"),
            "https://a.example/v1/t?done=true"
        );
    }

    #[test]
    fn test_absolute_targets_are_used_as_they_are() {
        assert_eq!(
            join("https://a.example/v1", "https://b.example/x"),
            "https://b.example/x"
        );
    }

    #[test]
    fn test_dot_segments_cannot_escape_the_base() {
        let base = Url::parse("https://a.example/v1").unwrap();

        assert!(matches!(
            resolve(&base, "/../admin"),
            Err(Failure::Invalid(_))
        ));
        assert!(matches!(
            resolve(&base, "/../v10"),
            Err(Failure::Invalid(_))
        ));
        assert_eq!(
            join("https://a.example/v1", "/a/../b"),
            "https://a.example/v1/b"
        );
    }

    #[test]
    fn test_only_post_and_patch_are_not_idempotent() {
        assert!(Method::Get.is_idempotent());
        assert!(Method::Delete.is_idempotent());
        assert!(!Method::Post.is_idempotent());
        assert!(!Method::Patch.is_idempotent());
    }
}
