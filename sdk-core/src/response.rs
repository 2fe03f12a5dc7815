//! Responses.

use std::fmt;

use bytes::Bytes;
use http::HeaderMap;
use serde::de::DeserializeOwned;
use url::Url;

use crate::Error;
use crate::cache::CacheInfo;
use crate::internal::redact;

/// A successful response (status below 400), with its body read in full.
///
/// Error statuses never arrive here: they are reported as [`Error::Http`].
pub struct Response {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    url: Url,
    attempts: u32,
    cache: CacheInfo,
}

impl Response {
    pub(crate) fn new(status: u16, headers: HeaderMap, body: Bytes, url: Url) -> Response {
        Response {
            status,
            headers,
            body,
            url,
            attempts: 1,
            cache: CacheInfo::network(),
        }
    }

    pub(crate) fn with_attempts(mut self, attempts: u32) -> Response {
        self.attempts = attempts;
        self
    }

    pub(crate) fn with_cache(mut self, cache: CacheInfo) -> Response {
        self.cache = cache;
        self
    }

    /// Whether the response came from the cache, is stale, was revalidated, and its age.
    pub fn cache(&self) -> CacheInfo {
        self.cache
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The first value of a header, if present and valid text. Names are case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The URL that answered, after any redirects.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// How many network attempts it took to get this response: 1 when no retry was needed, 0
    /// when it was served from the cache without contacting the server.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The body as bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// Takes the body, dropping the rest of the response.
    pub fn into_bytes(self) -> Bytes {
        self.body
    }

    /// The body as UTF-8 text. Invalid UTF-8 is an [`Error::Decode`].
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(|error| Error::Decode(error.to_string()))
    }

    /// Decodes the JSON body into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|error| Error::Decode(error.to_string()))
    }

    /// Decodes the XML body into `T`, with `quick-xml`'s serde mapping.
    #[cfg(feature = "xml")]
    pub fn xml<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let text = self.text()?;
        quick_xml::de::from_str(text).map_err(|error| Error::Decode(error.to_string()))
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("url", &redact::url(&self.url))
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("attempts", &self.attempts)
            .field("cache", &self.cache)
            .finish()
    }
}
