//! The router: every route of the contract, and the layers around them.
//!
//! A request passes, from the outside in, through the cache counter (which
//! counts requests to the cacheable resources), the fault middleware (which
//! counts every request and may fail it on purpose), the compression layer,
//! and then the route's handler. Unknown paths and wrong methods end in the fallbacks, so
//! that they too answer with a problem body.
//!
//! This module also holds the small helpers the handlers share: reading a
//! request body with a size limit, and reading query parameters.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{Extensions, HeaderMap, Method, StatusCode, Uri, Version};
use axum::middleware;
use axum::routing::{any, delete, get, post, put};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::sync::watch;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};

use crate::cache::{self, CacheResources};
use crate::db::Db;
use crate::faults::{self, Faults};
use crate::oauth::{self, OAuth};
use crate::problem::Problem;
use crate::realtime::{self, Hub};
use crate::stats::Stats;
use crate::{control, devices, fixtures, todos};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// The SQLite store.
    pub db: Db,

    /// The fault rules set through `/_control/faults`.
    pub faults: Arc<Faults>,

    /// The request counters.
    pub stats: Arc<Stats>,

    /// The OAuth settings that tests can change.
    pub oauth: Arc<OAuth>,

    /// The cacheable resources that tests define.
    pub cache: Arc<CacheResources>,
    /// Open WebSockets and the event log.
    pub realtime: Arc<Hub>,
}

impl AppState {
    /// Creates the state around an opened database; `shutdown` turns true when the server stops.
    pub(crate) fn new(db: Db, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            db,
            faults: Arc::default(),
            stats: Arc::default(),
            oauth: Arc::default(),
            cache: Arc::default(),
            realtime: Arc::new(Hub::new(shutdown)),
        }
    }
}

/// A response extension that keeps the compression layer away from a response.
///
/// Streamed endpoints set it so that a client sees their chunks as they are sent, and the
/// cacheable resources so that their bodies and headers stay exactly as defined.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Uncompressed;

/// Builds the router with all routes and layers.
pub(crate) fn router(state: AppState) -> Router {
    let compression = CompressionLayer::new()
        .gzip(true)
        .br(true)
        .compress_when(DefaultPredicate::new().and(is_compressible));

    Router::new()
        .route("/health", get(fixtures::health))
        .route("/todos", get(todos::list).post(todos::create))
        .route(
            "/todos/{id}",
            get(todos::fetch)
                .put(todos::replace)
                .patch(todos::update)
                .delete(todos::remove),
        )
        .route("/echo", any(fixtures::echo))
        .route("/redirect", get(fixtures::redirect))
        .route("/large", get(fixtures::large))
        .route("/status/{code}", get(fixtures::status))
        .route("/slow", get(fixtures::slow))
        .route("/xml", get(fixtures::xml))
        .route(
            "/cache/resources/{name}",
            get(cache::serve)
                .post(cache::update)
                .put(cache::update)
                .patch(cache::update)
                .delete(cache::update),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(oauth::discovery::metadata),
        )
        .route(
            "/oauth/authorize",
            get(oauth::authorize::authorize).post(oauth::authorize::submit),
        )
        .route("/oauth/token", post(oauth::token::token))
        .route("/oauth/revoke", post(oauth::revoke::revoke))
        .route(
            "/oauth/device_authorization",
            post(oauth::device::device_authorization),
        )
        .route(
            "/device",
            get(oauth::device::verification_page).post(oauth::device::verification_submit),
        )
        .route("/me", get(oauth::userinfo::me))
        .route("/ws", get(realtime::upgrade))
        .route(
            "/devices/{installation_id}",
            get(devices::fetch)
                .put(devices::register)
                .delete(devices::unregister),
        )
        .route(
            "/_control/faults",
            post(control::add_fault).delete(control::clear_faults),
        )
        .route("/_control/stats", get(control::stats))
        .route("/_control/devices", get(devices::control_list))
        .route(
            "/_control/devices/{installation_id}",
            axum::routing::delete(devices::control_delete),
        )
        .route("/_control/reset", post(control::reset))
        .route("/_control/cache/resources/{name}", put(cache::define))
        .route("/_control/cache/resources", delete(cache::clear))
        .route(
            "/_control/realtime/publish",
            post(realtime::control::publish),
        )
        .route(
            "/_control/realtime/drop",
            post(realtime::control::drop_connections),
        )
        .route(
            "/_control/realtime/silence",
            post(realtime::control::silence),
        )
        .route("/_control/realtime/close", post(realtime::control::close))
        .route("/_control/oauth/settings", post(oauth::control::settings))
        .route(
            "/_control/oauth/expire-access-tokens",
            post(oauth::control::expire_access_tokens),
        )
        .route("/_control/oauth/tokens", get(oauth::control::tokens))
        .route(
            "/_control/oauth/device/approve",
            post(oauth::device::control_approve),
        )
        .route(
            "/_control/oauth/device/deny",
            post(oauth::device::control_deny),
        )
        .fallback(not_found)
        // Applies to the routes above only, so it must come after them.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(compression)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            faults::middleware,
        ))
        // Outside the fault middleware, so that faulted requests are counted too.
        .layer(middleware::from_fn_with_state(state.clone(), cache::count))
        .with_state(state)
}

fn is_compressible(_: StatusCode, _: Version, _: &HeaderMap, extensions: &Extensions) -> bool {
    extensions.get::<Uncompressed>().is_none()
}

async fn not_found(uri: Uri) -> Problem {
    Problem::not_found(uri.path(), format!("there is nothing at {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem::status(
        StatusCode::METHOD_NOT_ALLOWED,
        uri.path(),
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Reads a whole request body, refusing one longer than `limit` bytes with a 413 problem.
pub(crate) async fn read_body(body: Body, limit: usize, instance: &str) -> Result<Bytes, Problem> {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();

    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|_| Problem::bad_request(instance, "the request body could not be read"))?;

        if buffer.len() + chunk.len() > limit {
            return Err(Problem::status(
                StatusCode::PAYLOAD_TOO_LARGE,
                instance,
                format!("the request body is larger than {limit} bytes"),
            ));
        }
        buffer.extend_from_slice(&chunk);
    }

    Ok(buffer.freeze())
}

/// The decoded query parameters of one request.
#[derive(Debug)]
pub(crate) struct QueryParams {
    params: HashMap<String, String>,
}

impl QueryParams {
    /// Decodes the query of `uri`; a query that cannot be decoded is a 400 problem.
    pub(crate) fn from_uri(uri: &Uri) -> Result<Self, Problem> {
        let Query(params) = Query::<HashMap<String, String>>::try_from_uri(uri)
            .map_err(|err| Problem::bad_request(uri.path(), err.body_text()))?;

        Ok(Self { params })
    }

    /// The raw value of a parameter.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Parses a parameter, which may be absent; an unparsable value is a 400 problem.
    pub(crate) fn parse<T: FromStr>(
        &self,
        name: &str,
        expected: &str,
        instance: &str,
    ) -> Result<Option<T>, Problem> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };

        raw.parse()
            .map(Some)
            .map_err(|_| Problem::bad_request(instance, format!("`{name}` must be {expected}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_parse_and_report_the_parameter() {
        let uri: Uri = "/large?bytes=12&chunked=true&bad=x".parse().unwrap();

        let params = QueryParams::from_uri(&uri).unwrap();
        let bytes: Option<u64> = params.parse("bytes", "a number", "/large").unwrap();
        let missing: Option<u64> = params.parse("nope", "a number", "/large").unwrap();
        let bad = params
            .parse::<u64>("bad", "a number", "/large")
            .unwrap_err();

        assert_eq!(bytes, Some(12));
        assert_eq!(missing, None);
        assert_eq!(params.get("chunked"), Some("true"));
        assert_eq!(bad.http_status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn read_body_enforces_the_limit() {
        let small = read_body(Body::from("hello"), 5, "/echo").await.unwrap();
        let large = read_body(Body::from("hello!"), 5, "/echo")
            .await
            .unwrap_err();

        assert_eq!(small, "hello");
        assert_eq!(large.http_status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
