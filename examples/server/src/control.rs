//! Test controls under `/_control`: fault rules, counters and a full reset.
//!
//! The controls of the cacheable resources live with them, in [`crate::cache`].
//!
//! These routes let a test arrange the server before it acts and check it
//! afterwards. The fault middleware lets them through untouched: they are never
//! faulted and never counted.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::info;

use crate::app::{AppState, read_body};
use crate::devices;
use crate::faults::FaultRule;
use crate::oauth::store;
use crate::problem::Problem;
use crate::stats::{
    CacheCounters, Counters, OAuthCounters, PushCounters, RealtimeCounters, SlowCounters,
};

/// The largest fault rule body accepted.
const BODY_LIMIT: usize = 16 * 1024;

/// The body of `GET /_control/stats`.
#[derive(Debug, Serialize)]
struct StatsBody {
    total: u64,
    by_route: std::collections::BTreeMap<String, u64>,
    slow: SlowCounters,
    faults_injected: u64,
    todos: u64,
    oauth: OAuthStats,
    cache: std::collections::BTreeMap<String, CacheCounters>,
    push: PushStats,
    realtime: RealtimeStats,
}

/// The `realtime` part of the stats: the endpoint's counters and the sockets open now.
#[derive(Debug, Serialize)]
struct RealtimeStats {
    #[serde(flatten)]
    counters: RealtimeCounters,
    open_connections: usize,
}

/// The `oauth` part of the stats: the handlers' counters and the grants in the store.
#[derive(Debug, Serialize)]
struct OAuthStats {
    #[serde(flatten)]
    counters: OAuthCounters,
    grants_revoked: u64,
    active_grants: u64,
}

/// The `push` part of the stats: the registry's counters and the devices it holds.
#[derive(Debug, Serialize)]
struct PushStats {
    #[serde(flatten)]
    counters: PushCounters,
    devices: u64,
}

/// `POST /_control/faults`: appends a fault rule.
pub(crate) async fn add_fault(
    State(state): State<AppState>,
    uri: Uri,
    body: Body,
) -> Result<StatusCode, Problem> {
    let body = read_body(body, BODY_LIMIT, uri.path()).await?;
    let rule = FaultRule::from_json(&body, uri.path())?;

    info!(?rule, "fault rule added");
    state.faults.add(rule);

    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /_control/faults`: removes every fault rule.
pub(crate) async fn clear_faults(State(state): State<AppState>) -> StatusCode {
    state.faults.clear();
    info!("fault rules cleared");

    StatusCode::NO_CONTENT
}

/// `GET /_control/stats`: the counters, the number of stored todos and devices, and the state
/// of grants.
pub(crate) async fn stats(State(state): State<AppState>, uri: Uri) -> Response {
    let todos = match state.db.count_todos().await {
        Ok(todos) => todos,
        Err(err) => return err.into_problem(uri.path()).into_response(),
    };
    let grants = match state.db.run(|conn| Ok(store::counts(conn)?)).await {
        Ok(counts) => counts,
        Err(err) => return err.into_problem(uri.path()).into_response(),
    };

    let devices = match state.db.run(|conn| Ok(devices::count(conn)?)).await {
        Ok(devices) => devices,
        Err(err) => return err.into_problem(uri.path()).into_response(),
    };

    let Counters {
        total,
        by_route,
        slow,
        faults_injected,
        oauth,
        cache,
        push,
        realtime,
    } = state.stats.snapshot();
    Json(StatsBody {
        total,
        by_route,
        slow,
        faults_injected,
        todos,
        oauth: OAuthStats {
            counters: oauth,
            grants_revoked: grants.grants_revoked,
            active_grants: grants.active_grants,
        },
        cache,
        push: PushStats {
            counters: push,
            devices,
        },
        realtime: RealtimeStats {
            counters: realtime,
            open_connections: state.realtime.open(),
        },
    })
    .into_response()
}

/// `POST /_control/reset`: deletes all data (todos, devices, OAuth state), rules, counts,
/// cache resources, OAuth settings, and realtime sockets and events.
pub(crate) async fn reset(State(state): State<AppState>, uri: Uri) -> Response {
    if let Err(err) = state.db.clear().await {
        return err.into_problem(uri.path()).into_response();
    }

    state.faults.clear();
    state.stats.reset();
    state.oauth.reset();
    state.cache.clear();
    state.realtime.reset();
    info!("server reset");

    StatusCode::NO_CONTENT.into_response()
}
