//! Test controls under `/_control/realtime`: publish, drop, silence and close.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::Uri;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::info;

use super::Command;
use crate::app::{AppState, read_body};
use crate::problem::{FieldError, Problem};

/// The largest control body accepted.
const BODY_LIMIT: usize = 1024 * 1024;

/// How many sockets a control reached.
#[derive(Debug, Serialize)]
pub(crate) struct Reached {
    connections: usize,
}

/// The answer to a publish.
#[derive(Debug, Serialize)]
pub(crate) struct Published {
    id: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    data: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    code: u16,
    #[serde(default)]
    reason: String,
}

/// `POST /_control/realtime/publish` with `{"data": ...}`: publishes an event.
pub(crate) async fn publish(
    State(state): State<AppState>,
    uri: Uri,
    body: Body,
) -> Result<Json<Published>, Problem> {
    let instance = uri.path();
    let body = read_body(body, BODY_LIMIT, instance).await?;
    let body: PublishBody = serde_json::from_slice(&body)
        .map_err(|err| Problem::malformed_body(instance, err.to_string()))?;

    let id = state.realtime.publish(&body.data);
    state
        .stats
        .record_realtime(|realtime| realtime.events_published += 1);
    Ok(Json(Published { id }))
}

/// `POST /_control/realtime/drop`: aborts every open socket with a TCP RST.
pub(crate) async fn drop_connections(State(state): State<AppState>) -> Json<Reached> {
    let connections = state.realtime.command_all(&Command::Drop);
    info!(connections, "websockets dropped");
    Json(Reached { connections })
}

/// `POST /_control/realtime/silence`: every open socket stops reading and writing.
pub(crate) async fn silence(State(state): State<AppState>) -> Json<Reached> {
    let connections = state.realtime.command_all(&Command::Silence);
    info!(connections, "websockets silenced");
    Json(Reached { connections })
}

/// `POST /_control/realtime/close` with `{"code": N, "reason": "..."}`: closes every open socket
/// with that code.
pub(crate) async fn close(
    State(state): State<AppState>,
    uri: Uri,
    body: Body,
) -> Result<Json<Reached>, Problem> {
    let instance = uri.path();
    let body = read_body(body, BODY_LIMIT, instance).await?;
    let body: CloseBody = serde_json::from_slice(&body)
        .map_err(|err| Problem::malformed_body(instance, err.to_string()))?;

    // RFC 6455 7.4: the codes an endpoint may send.
    let sendable = matches!(body.code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    let mut errors = Vec::new();
    if !sendable {
        errors.push(FieldError::new(
            "code",
            "must be a close code an endpoint may send",
        ));
    }
    if body.reason.len() > 123 {
        errors.push(FieldError::new(
            "reason",
            "must fit a close frame (123 bytes)",
        ));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(instance, errors));
    }

    let command = Command::Close {
        code: body.code,
        reason: body.reason,
    };
    let connections = state.realtime.command_all(&command);
    info!(connections, code = body.code, "websockets closed");
    Ok(Json(Reached { connections }))
}
