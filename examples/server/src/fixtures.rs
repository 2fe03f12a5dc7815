//! Endpoints that exist to exercise a client rather than to store anything.
//!
//! `/health` answers liveness probes; `/echo` reflects the request it got;
//! `/redirect`, `/status/{code}` and `/xml` produce one specific response
//! each; `/large` and `/slow` stream bodies, the first fast and big, the
//! second small and drawn out, and both are kept out of compression so that
//! their chunks reach the client as they are produced.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use serde_json::json;
use tokio::time::Instant;

use crate::app::{AppState, QueryParams, Uncompressed, read_body};
use crate::problem::Problem;
use crate::stats::Stats;

/// The largest body `/echo` reads.
const ECHO_LIMIT: usize = 16 * 1024 * 1024;

/// The largest body `/large` produces: 1 GiB.
const LARGE_MAX: u64 = 1 << 30;

/// `/large` streams its body in pieces of this size.
const LARGE_CHUNK: usize = 8 * 1024;

/// The longest `/slow` response, in milliseconds.
const SLOW_MAX_MS: u64 = 10 * 60 * 1000;

/// The most chunks `/slow` splits a body into.
const SLOW_MAX_CHUNKS: u32 = 10_000;

const XML_TODO: &str = "<todo><id>1</id><title>Read the contract</title><done>false</done></todo>";

static FILLER: [u8; LARGE_CHUNK] = [b'a'; LARGE_CHUNK];

/// `GET /health`: the server is up.
pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Any method on `/echo`: the request as the server saw it.
pub(crate) async fn echo(
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, Problem> {
    let body = read_body(body, ECHO_LIMIT, uri.path()).await?;

    let mut echoed = BTreeMap::<String, String>::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        echoed
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }

    Ok(Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": echoed,
        "body": String::from_utf8_lossy(&body),
    })))
}

/// `GET /redirect?to=URL&status=302`: a redirect to `to`.
pub(crate) async fn redirect(uri: Uri) -> Result<Response, Problem> {
    let path = uri.path();
    let params = QueryParams::from_uri(&uri)?;

    let to = params
        .get("to")
        .ok_or_else(|| Problem::bad_request(path, "`to` is required"))?;
    let location = HeaderValue::from_str(to)
        .map_err(|_| Problem::bad_request(path, "`to` cannot be sent as a header"))?;

    let expected = "one of 301, 302, 303, 307, 308";
    let code: u16 = params.parse("status", expected, path)?.unwrap_or(302);
    if !matches!(code, 301 | 302 | 303 | 307 | 308) {
        return Err(Problem::bad_request(
            path,
            format!("`status` must be {expected}"),
        ));
    }
    let status = StatusCode::from_u16(code).expect("redirect codes are valid");

    Ok((status, [(header::LOCATION, location)]).into_response())
}

/// `GET /large?bytes=N[&chunked=true]`: N bytes of `a`.
pub(crate) async fn large(uri: Uri) -> Result<Response, Problem> {
    let path = uri.path();
    let params = QueryParams::from_uri(&uri)?;

    let bytes: u64 = params
        .parse("bytes", "a whole number of bytes", path)?
        .ok_or_else(|| Problem::bad_request(path, "`bytes` is required"))?;
    if bytes > LARGE_MAX {
        return Err(Problem::bad_request(
            path,
            format!("`bytes` must be at most {LARGE_MAX}"),
        ));
    }
    let chunked: bool = params
        .parse("chunked", "true or false", path)?
        .unwrap_or(false);

    let body = Filler {
        remaining: bytes,
        announce_length: !chunked,
    };
    let mut response = Body::new(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response.extensions_mut().insert(Uncompressed);

    Ok(response)
}

/// `GET /status/{code}[?retry_after=SECS]`: a response with that status.
pub(crate) async fn status(uri: Uri) -> Result<Response, Problem> {
    let path = uri.path();
    let params = QueryParams::from_uri(&uri)?;

    let status = path
        .strip_prefix("/status/")
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| Problem::bad_request(path, "the status must be a number from 200 to 599"))?;
    let retry_after: Option<u64> =
        params.parse("retry_after", "a whole number of seconds", path)?;

    let mut response = match status.as_u16() {
        // These statuses must not carry a body.
        204 | 205 | 304 => status.into_response(),
        _ if status.is_success() => {
            (status, Json(json!({ "status": status.as_u16() }))).into_response()
        }
        _ => Problem::status(status, path, "this status was asked for").into_response(),
    };
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }

    Ok(response)
}

/// `GET /slow?ms=N[&chunks=K]`: K chunks spread evenly over N milliseconds.
///
/// The headers go out at once; chunk `i` (from 1) is produced `i * N / K`
/// milliseconds after the handler began. `ms` defaults to 1000 and `chunks` to 10.
pub(crate) async fn slow(State(state): State<AppState>, uri: Uri) -> Result<Response, Problem> {
    let path = uri.path();
    let params = QueryParams::from_uri(&uri)?;

    let ms: u64 = params
        .parse("ms", "a whole number of milliseconds", path)?
        .unwrap_or(1000);
    if ms > SLOW_MAX_MS {
        return Err(Problem::bad_request(
            path,
            format!("`ms` must be at most {SLOW_MAX_MS}"),
        ));
    }
    let chunks: u32 = params
        .parse("chunks", "a whole number", path)?
        .unwrap_or(10);
    if !(1..=SLOW_MAX_CHUNKS).contains(&chunks) {
        return Err(Problem::bad_request(
            path,
            format!("`chunks` must be from 1 to {SLOW_MAX_CHUNKS}"),
        ));
    }

    state.stats.record_slow_started();
    let start = Instant::now();
    let total = Duration::from_millis(ms);
    let guard = SlowGuard {
        stats: Arc::clone(&state.stats),
        completed: false,
    };

    let stream = futures::stream::unfold((guard, 0u32), move |(mut guard, sent)| async move {
        if sent == chunks {
            return None;
        }

        let sent = sent + 1;
        tokio::time::sleep_until(start + total * sent / chunks).await;
        if sent == chunks {
            guard.complete();
        }

        let chunk = Bytes::from(format!("chunk {sent} of {chunks}\n"));
        Some((Ok::<_, Infallible>(chunk), (guard, sent)))
    });

    let mut response = Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response.extensions_mut().insert(Uncompressed);

    Ok(response)
}

/// `GET /xml`: one todo as XML.
pub(crate) async fn xml() -> Response {
    ([(header::CONTENT_TYPE, "application/xml")], XML_TODO).into_response()
}

/// Counts a `/slow` body as aborted when it is dropped before its last chunk.
struct SlowGuard {
    stats: Arc<Stats>,
    completed: bool,
}

impl SlowGuard {
    fn complete(&mut self) {
        self.completed = true;
        self.stats.record_slow_completed();
    }
}

impl Drop for SlowGuard {
    fn drop(&mut self) {
        if !self.completed {
            self.stats.record_slow_aborted();
        }
    }
}

/// A body of `remaining` bytes of `a`, produced 8 KiB at a time.
///
/// With `announce_length` the exact size is known up front, so the response
/// carries a `Content-Length`; without it, HTTP/1.1 falls back to chunked
/// transfer encoding.
struct Filler {
    remaining: u64,
    announce_length: bool,
}

impl http_body::Body for Filler {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }

        let len = self.remaining.min(LARGE_CHUNK as u64);
        self.remaining -= len;

        let data = Bytes::from_static(&FILLER).slice(..len as usize);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.announce_length && self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.announce_length {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body::Body as _;

    fn collect(mut body: Filler) -> usize {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut total = 0;

        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
            let data = frame.into_data().unwrap();
            assert!(data.len() <= LARGE_CHUNK);
            assert!(data.iter().all(|&byte| byte == b'a'));
            total += data.len();
        }

        total
    }

    #[test]
    fn filler_produces_exactly_the_asked_size() {
        for size in [0, 1, 8191, 8192, 8193, 100_000] {
            assert_eq!(
                collect(Filler {
                    remaining: size,
                    announce_length: true
                }),
                size as usize
            );
        }
    }

    #[test]
    fn filler_announces_its_length_only_when_asked() {
        let exact = Filler {
            remaining: 10,
            announce_length: true,
        };
        let unknown = Filler {
            remaining: 10,
            announce_length: false,
        };

        assert_eq!(exact.size_hint().exact(), Some(10));
        assert_eq!(unknown.size_hint().exact(), None);
    }
}
