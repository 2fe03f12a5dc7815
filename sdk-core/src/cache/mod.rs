//! The HTTP cache: a private cache by the rules of RFC 9111, persisted in SQLite.
//!
//! GET and HEAD requests look for a stored response first. A fresh one is served without the
//! network; a stale one is revalidated with `If-None-Match` / `If-Modified-Since`, and a 304
//! refreshes the stored headers. When the device is offline, or the server cannot be reached,
//! a stale response is served where the rules allow, and says so in its [`CacheInfo`]. A
//! successful unsafe request (POST, PUT, PATCH, DELETE) invalidates its target and the
//! `Location` / `Content-Location` it names.
//!
//! Responses are stored per partition: one per signed-in session, one per static credential,
//! one for anonymous requests. Sign-out wipes the session partitions, so nothing cached for one
//! user is ever served to another. The size budget is enforced by evicting the least recently
//! used responses. A damaged cache file is set aside and rebuilt.

pub(crate) mod rules;
mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{
    AGE, CONTENT_LOCATION, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION,
};
use http::{HeaderMap, HeaderValue};
use tracing::{debug, warn};
use url::Url;

use crate::auth::SessionHook;
use crate::client::Shared;
use crate::internal::pipeline::{self, Prepared};
use crate::storage::{Database, OnCorruption};
use crate::{Error, Method, Response};

use rules::{Directives, Freshness, Timing, Use};
use store::{CacheStore, Entry};

/// How one request uses the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CachePolicy {
    /// Follow the rules of RFC 9111: fresh responses from the cache, stale ones revalidated.
    #[default]
    Default,
    /// Always check with the server (a conditional request when something is stored), except
    /// for a fresh response marked `immutable`.
    AlwaysRevalidate,
    /// Never use the network: serve what is stored, fresh or stale, or fail with
    /// [`Error::NotCached`]. For reading while offline.
    CacheOnly,
    /// Neither read nor write the cache.
    Bypass,
}

/// Where a response came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheSource {
    /// The server sent it in answer to this request.
    Network,
    /// It was stored earlier (and possibly just revalidated).
    Cache,
}

/// How a response relates to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    /// Where the body came from.
    pub source: CacheSource,
    /// Whether the response is past its freshness lifetime (served offline, after an error, or
    /// while revalidating in the background).
    pub stale: bool,
    /// Whether the server confirmed the stored response with a 304 for this request.
    pub revalidated: bool,
    /// The response's age, for responses served from the cache.
    pub age: Option<Duration>,
}

impl CacheInfo {
    pub(crate) fn network() -> CacheInfo {
        CacheInfo {
            source: CacheSource::Network,
            stale: false,
            revalidated: false,
            age: None,
        }
    }
}

/// The cache of one client.
#[derive(Clone, Debug)]
pub(crate) struct HttpCache {
    store: CacheStore,
}

/// Partition names of signed-in sessions start with this.
pub(crate) const SESSION_PARTITION: &str = "session:";

impl HttpCache {
    pub(crate) fn open(dir: Option<&Path>, max_size: u64) -> Result<HttpCache, Error> {
        let database = match dir {
            Some(dir) => Database::open(
                &dir.join("cache.sqlite3"),
                store::MIGRATIONS,
                OnCorruption::Rebuild,
            )?,
            None => Database::in_memory(store::MIGRATIONS)?,
        };
        Ok(HttpCache {
            store: CacheStore::new(database, max_size)?,
        })
    }

    /// Forgets every signed-in session's responses.
    fn wipe_sessions(&self) {
        match self.store.wipe_partitions(SESSION_PARTITION) {
            Ok(removed) => debug!(removed, "session responses removed from the cache"),
            Err(error) => warn!(%error, "could not wipe session responses from the cache"),
        }
    }
}

/// The end of a session wipes what was cached for it.
impl SessionHook for HttpCache {
    fn ended(&self) {
        self.wipe_sessions();
    }
}

/// Runs a request through the cache. Only GET and HEAD read it; unsafe methods invalidate.
pub(crate) async fn execute(
    shared: &Arc<Shared>,
    cache: &HttpCache,
    request: Prepared,
) -> Result<Response, Error> {
    let method = request.method;
    if !matches!(method, Method::Get | Method::Head) {
        let target = request.url.clone();
        let response = pipeline::run(shared, request).await?;
        if method != Method::Options {
            invalidate(cache, &target, response.headers()).await;
        }
        return Ok(response);
    }

    let directives = Directives::parse(&request.headers);
    let conditional = request.headers.contains_key(IF_NONE_MATCH)
        || request.headers.contains_key(IF_MODIFIED_SINCE);
    if request.cache_policy == CachePolicy::Bypass || directives.no_store || conditional {
        return pipeline::run(shared, request).await;
    }

    let partition = shared.partition();
    let url = request.url.to_string();
    let stored = match cache.store.lookup(&partition, &url, &request.headers) {
        Ok(stored) => stored,
        Err(error) => {
            warn!(%error, "cache lookup failed; using the network");
            None
        }
    };
    let only_if_cached =
        request.cache_policy == CachePolicy::CacheOnly || directives.only_if_cached;

    let Some(entry) = stored else {
        if only_if_cached {
            return Err(Error::NotCached);
        }
        return fetch_and_store(shared, cache, request, &partition).await;
    };

    let freshness = freshness(&entry, SystemTime::now());
    if only_if_cached {
        return Ok(serve(&entry, method, freshness, false));
    }

    let always = request.cache_policy == CachePolicy::AlwaysRevalidate;
    match rules::decide(&directives, &entry.headers, freshness, always) {
        Use::Fresh => Ok(serve(&entry, method, freshness, false)),
        Use::StaleWhileRevalidate => {
            let background = (Arc::clone(shared), cache.clone(), request, entry.clone());
            tokio::spawn(async move {
                let (shared, cache, request, entry) = background;
                let partition = shared.partition();
                if let Err(error) = revalidate(&shared, &cache, request, entry, &partition).await {
                    debug!(%error, "background revalidation failed");
                }
            });
            Ok(serve(&entry, method, freshness, false))
        }
        Use::Revalidate => {
            if !shared.connectivity.is_online() {
                return stale_or(&entry, method, freshness, true, Error::Offline);
            }
            match revalidate(shared, cache, request, entry.clone(), &partition).await {
                Ok(response) => Ok(response),
                Err(error) => {
                    let disconnected = matches!(
                        error,
                        Error::Offline | Error::Timeout | Error::Connection(_)
                    );
                    let server_failed = error.status().is_some_and(|status| status >= 500);
                    if disconnected || server_failed {
                        stale_or(&entry, method, freshness, disconnected, error)
                    } else {
                        Err(error)
                    }
                }
            }
        }
    }
}

/// Sends a conditional request for a stored response and applies the answer.
async fn revalidate(
    shared: &Arc<Shared>,
    cache: &HttpCache,
    mut request: Prepared,
    mut entry: Entry,
    partition: &str,
) -> Result<Response, Error> {
    if let Some(etag) = entry.headers.get(ETAG) {
        request.headers.insert(IF_NONE_MATCH, etag.clone());
    } else if let Some(modified) = entry.headers.get(LAST_MODIFIED) {
        request.headers.insert(IF_MODIFIED_SINCE, modified.clone());
    }
    let method = request.method;
    let sent_headers = request.headers.clone();
    let request_time = SystemTime::now();
    let response = pipeline::run(shared, request).await?;
    let response_time = SystemTime::now();

    if response.status() != 304 {
        let url = entry.url.clone();
        let timing = Timing {
            request_time,
            response_time,
        };
        store_if_allowed(cache, partition, &url, &sent_headers, &response, timing).await;
        return Ok(response);
    }

    // 304: the stored response is still good; take the new headers and timing (4.3.4).
    for (name, value) in response.headers() {
        if rules::updates_stored_header(name) {
            entry.headers.insert(name.clone(), value.clone());
        }
    }
    entry.timing = Timing {
        request_time,
        response_time,
    };
    if let Err(error) = cache.store.freshen(&entry).await {
        warn!(%error, "could not update the stored response");
    }
    let mut served = serve(&entry, method, freshness(&entry, SystemTime::now()), true);
    served = served.with_attempts(response.attempts());
    Ok(served)
}

async fn fetch_and_store(
    shared: &Arc<Shared>,
    cache: &HttpCache,
    request: Prepared,
    partition: &str,
) -> Result<Response, Error> {
    let method = request.method;
    let url = request.url.to_string();
    let sent_headers = request.headers.clone();
    let request_time = SystemTime::now();
    let response = pipeline::run(shared, request).await?;
    if method == Method::Get {
        let timing = Timing {
            request_time,
            response_time: SystemTime::now(),
        };
        store_if_allowed(cache, partition, &url, &sent_headers, &response, timing).await;
    }
    Ok(response)
}

async fn store_if_allowed(
    cache: &HttpCache,
    partition: &str,
    url: &str,
    request_headers: &HeaderMap,
    response: &Response,
    timing: Timing,
) {
    let directives = Directives::parse(request_headers);
    if !rules::is_storable(response.status(), &directives, response.headers()) {
        return;
    }
    let stored = cache
        .store
        .put(partition, url, request_headers, response, timing)
        .await;
    if let Err(error) = stored {
        warn!(%error, "could not store the response");
    }
}

fn freshness(entry: &Entry, now: SystemTime) -> Freshness {
    Freshness {
        age: rules::current_age(&entry.headers, entry.timing, now),
        lifetime: rules::freshness_lifetime(entry.status, &entry.headers),
    }
}

fn stale_or(
    entry: &Entry,
    method: Method,
    freshness: Freshness,
    disconnected: bool,
    error: Error,
) -> Result<Response, Error> {
    if rules::may_serve_stale(&entry.headers, freshness, disconnected) {
        debug!(%error, "serving a stale response");
        Ok(serve(entry, method, freshness, false))
    } else {
        Err(error)
    }
}

/// Builds the response served from a stored entry, with an `Age` header (4).
fn serve(entry: &Entry, method: Method, freshness: Freshness, revalidated: bool) -> Response {
    let mut headers = entry.headers.clone();
    let age = freshness.age;
    if let Ok(value) = HeaderValue::from_str(&age.as_secs().to_string()) {
        headers.insert(AGE, value);
    }
    let body = if method == Method::Head {
        Bytes::new()
    } else {
        entry.body.clone()
    };
    let url = Url::parse(&entry.url).expect("stored URLs were valid when stored");
    let info = CacheInfo {
        source: CacheSource::Cache,
        stale: !freshness.is_fresh(),
        revalidated,
        age: Some(age),
    };
    Response::new(entry.status, headers, body, url)
        .with_attempts(0)
        .with_cache(info)
}

/// Invalidates the target and the same-origin `Location` / `Content-Location` (4.4).
async fn invalidate(cache: &HttpCache, target: &Url, headers: &HeaderMap) {
    let mut urls = vec![target.clone()];
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(value) = headers.get(&name).and_then(|value| value.to_str().ok()) else {
            continue;
        };
        if let Ok(url) = target.join(value)
            && url.origin() == target.origin()
        {
            urls.push(url);
        }
    }
    for url in urls {
        if let Err(error) = cache.store.invalidate(url.to_string()).await {
            warn!(%error, "could not invalidate a stored response");
        }
    }
}
