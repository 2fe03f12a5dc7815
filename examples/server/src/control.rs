//! Test controls under `/_control`: fault rules, counters and a full reset.
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
use crate::faults::FaultRule;
use crate::problem::Problem;
use crate::stats::{Counters, SlowCounters};

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

/// `GET /_control/stats`: the counters and the number of stored todos.
pub(crate) async fn stats(State(state): State<AppState>, uri: Uri) -> Response {
    let todos = match state.db.count_todos().await {
        Ok(todos) => todos,
        Err(err) => return err.into_problem(uri.path()).into_response(),
    };

    let Counters {
        total,
        by_route,
        slow,
        faults_injected,
    } = state.stats.snapshot();
    Json(StatsBody {
        total,
        by_route,
        slow,
        faults_injected,
        todos,
    })
    .into_response()
}

/// `POST /_control/reset`: deletes all data, rules and counts.
pub(crate) async fn reset(State(state): State<AppState>, uri: Uri) -> Response {
    if let Err(err) = state.db.clear().await {
        return err.into_problem(uri.path()).into_response();
    }

    state.faults.clear();
    state.stats.reset();
    info!("server reset");

    StatusCode::NO_CONTENT.into_response()
}
