//! The request pipeline: one call, from the first attempt to the last.
//!
//! For each attempt: check connectivity, check transport security, send, read the body within
//! the size limit, turn an error status into a failure. A failed attempt is retried when the
//! request is safe to repeat and the retry policy, asked with the failure's
//! [`RetryClass`](crate::RetryClass), gives a delay. Going offline ends the wait early.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::HeaderValue;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use tracing::{Instrument, debug, debug_span, warn};
use url::Url;

use crate::auth::Credentials;
use crate::cache::{self, CachePolicy};
use crate::client::{Auth, Shared};
use crate::error::Problem;
use crate::internal::error::Failure;
use crate::internal::{redact, transport};
use crate::retry::{self, RetryPolicy};
use crate::{Error, Method, Response};

/// A request with everything resolved, ready to be attempted any number of times.
#[derive(Clone)]
pub(crate) struct Prepared {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) has_idempotency_key: bool,
    pub(crate) cache_policy: CachePolicy,
    /// Whether the client's credentials go with it (to the client's own origin only).
    pub(crate) authenticate: bool,
}

pub(crate) async fn execute(shared: &Arc<Shared>, request: Prepared) -> Result<Response, Error> {
    let span = debug_span!(
        "request",
        method = %request.method,
        url = %redact::url(&request.url),
    );
    match &shared.cache {
        Some(cache) => {
            cache::execute(shared, cache, request)
                .instrument(span)
                .await
        }
        None => run(shared, request).instrument(span).await,
    }
}

/// Makes attempts until one succeeds or the retry policy says stop.
pub(crate) async fn run(shared: &Shared, request: Prepared) -> Result<Response, Error> {
    let retry_safe = retry::is_retry_safe(request.method, request.has_idempotency_key);
    let started = Instant::now();
    let mut attempt = 1;
    let mut reauthenticated = false;

    loop {
        let (outcome, generation) = attempt_once(shared, &request).await;
        let failure = match outcome {
            Ok(response) => {
                debug!(status = response.status(), attempt, "request succeeded");
                return Ok(response.with_attempts(attempt));
            }
            Err(failure) => failure.into_public(),
        };

        // A 401 means the server did not act on the request, so any method may be resent once
        // with a refreshed token. A token that was already replaced is not refreshed again.
        if let (Some(generation), Some(Auth::OAuth(engine))) = (generation, &shared.auth)
            && failure.status() == Some(401)
            && !reauthenticated
        {
            debug!("access token rejected; refreshing");
            engine.rejected(generation).await?;
            reauthenticated = true;
            attempt += 1;
            continue;
        }

        let delay = retry_safe
            .then(|| {
                let class = failure.retry_class();
                request
                    .retry
                    .delay_after(attempt, class, started.elapsed(), fastrand::f64())
            })
            .flatten();
        let Some(delay) = delay else {
            debug!(attempt, error = %failure, "request failed");
            return Err(failure);
        };
        if failure.is_offline() {
            return Err(failure);
        }

        warn!(attempt, delay_ms = delay.as_millis() as u64, error = %failure, "retrying request");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.connectivity.wait_offline() => return Err(Error::Offline),
        }
        attempt += 1;
    }
}

/// Makes one attempt. Also returns the generation of the OAuth token it sent, if any.
async fn attempt_once(
    shared: &Shared,
    request: &Prepared,
) -> (Result<Response, Failure>, Option<u64>) {
    let mut generation = None;
    let outcome = async {
        if !shared.connectivity.is_online() {
            return Err(Failure::Offline);
        }
        transport::check_security(&request.url, shared.allow_insecure_http)?;

        let mut url = request.url.clone();
        let mut headers = request.headers.clone();
        if request.authenticate && url.origin() == shared.base_url.origin() {
            generation = authenticate(shared, &mut url, &mut headers).await?;
        }
        send(shared, request, url, headers).await
    }
    .await;
    (outcome, generation)
}

/// Adds the client's credentials to a request for its own origin.
pub(crate) async fn authenticate(
    shared: &Shared,
    url: &mut Url,
    headers: &mut HeaderMap,
) -> Result<Option<u64>, Failure> {
    let bearer = |token: &str| -> Result<HeaderValue, Failure> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
        value.set_sensitive(true);
        Ok(value)
    };

    match &shared.auth {
        None => Ok(None),
        Some(Auth::Static(Credentials::ApiKeyHeader { name, key })) => {
            let (name, value) = crate::client::parse_header(name, key.expose())?;
            headers.insert(name, value);
            Ok(None)
        }
        Some(Auth::Static(Credentials::ApiKeyQuery { name, key })) => {
            url.query_pairs_mut().append_pair(name, key.expose());
            Ok(None)
        }
        Some(Auth::Static(Credentials::BearerToken(token))) => {
            headers.insert(AUTHORIZATION, bearer(token.expose())?);
            Ok(None)
        }
        Some(Auth::OAuth(engine)) => {
            let authorization = engine.authorization().await?;
            headers.insert(AUTHORIZATION, bearer(authorization.token.expose())?);
            Ok(Some(authorization.generation))
        }
    }
}

async fn send(
    shared: &Shared,
    request: &Prepared,
    url: Url,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let mut builder = shared
        .http
        .request(request.method.to_http(), url)
        .headers(headers);
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }

    let exchange = async {
        let response = builder.send().await?;
        read_response(response, request.method, shared.max_response_body).await
    };
    match tokio::time::timeout(request.timeout, exchange).await {
        Ok(result) => result,
        Err(_elapsed) => Err(Failure::Timeout),
    }
}

async fn read_response(
    mut response: reqwest::Response,
    method: Method,
    limit: u64,
) -> Result<Response, Failure> {
    let status = response.status().as_u16();
    let url = response.url().clone();
    let mut headers = std::mem::take(response.headers_mut());
    for (name, value) in headers.iter_mut() {
        if redact::is_sensitive_header(name) {
            value.set_sensitive(true);
        }
    }

    let body = if method == Method::Head {
        Bytes::new()
    } else {
        read_body(response, limit).await?
    };

    if status >= 400 {
        return Err(status_failure(status, &headers, &body));
    }
    Ok(Response::new(status, headers, body, url))
}

async fn read_body(mut response: reqwest::Response, limit: u64) -> Result<Bytes, Failure> {
    if response
        .content_length()
        .is_some_and(|length| length > limit)
    {
        return Err(Failure::BodyTooLarge { limit });
    }

    let expected = response.content_length().unwrap_or(0).min(64 * 1024);
    let mut body = BytesMut::with_capacity(expected as usize);
    while let Some(chunk) = response.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Failure::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub(crate) fn status_failure(status: u16, headers: &HeaderMap, body: &[u8]) -> Failure {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let media_type = value.split(';').next().unwrap_or_default().trim();
            media_type.eq_ignore_ascii_case("application/problem+json")
                || media_type.eq_ignore_ascii_case("application/json")
        });
    let problem = is_json.then(|| Problem::from_json(body)).flatten();

    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| retry::parse_retry_after(value, SystemTime::now()));

    Failure::Status {
        status,
        problem: problem.map(Box::new),
        retry_after,
    }
}
