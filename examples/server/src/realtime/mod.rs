//! Realtime: an authenticated WebSocket endpoint with echo, publish and replay.
//!
//! `GET /ws` upgrades to a WebSocket when it carries a valid access token (the same bearer
//! tokens `/me` accepts). On the socket:
//!
//! - a text message `{"publish": DATA}` publishes an *event*: the hub gives it the next id,
//!   keeps it in the replay buffer and sends `{"id": N, "data": DATA}` to every open socket,
//!   the sender included;
//! - any other text message, and every binary message, is echoed back as it came.
//!
//! A client that reconnects with `?last_event_id=N` first gets every buffered event after `N`,
//! in order, then the live ones. Replay and registration happen under one lock, so nothing is
//! sent twice or falls in between.
//!
//! The hub also holds a command line to every open socket, which the test controls use to drop
//! connections abruptly, make them fall silent, or close them with a chosen code.

pub(crate) mod control;
mod socket;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use crate::app::{AppState, QueryParams};
use crate::conn::KillSwitch;
use crate::oauth::store::{self, AccessCheck};
use crate::oauth::{digest, now_ms, userinfo};
use crate::problem::Problem;

/// How many events the replay buffer keeps.
pub(crate) const REPLAY_CAPACITY: usize = 1000;

/// The largest message the endpoint reads.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The subprotocol the endpoint speaks when a client offers it.
pub(crate) const SUBPROTOCOL: &str = "roundtrip.v1";

/// What the hub can tell one socket to do.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    /// Send this event envelope.
    Event(String),
    /// Abort the connection with a TCP RST, sending nothing more.
    Drop,
    /// Stop reading and writing: no pongs, no messages, until dropped.
    Silence,
    /// Send a close frame with this code and reason, then end.
    Close { code: u16, reason: String },
}

/// Open sockets and the event log.
#[derive(Debug)]
pub(crate) struct Hub {
    state: Mutex<HubState>,
    shutdown: watch::Receiver<bool>,
}

#[derive(Debug, Default)]
struct HubState {
    next_socket: u64,
    sockets: BTreeMap<u64, mpsc::UnboundedSender<Command>>,
    last_event_id: u64,
    replay: VecDeque<(u64, String)>,
}

/// One socket's membership; leaves the hub when dropped.
pub(crate) struct Membership<'a> {
    hub: &'a Hub,
    id: u64,
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        self.hub.lock().sockets.remove(&self.id);
    }
}

impl Hub {
    pub(crate) fn new(shutdown: watch::Receiver<bool>) -> Self {
        Self {
            state: Mutex::default(),
            shutdown,
        }
    }

    /// Registers a socket. When it resumes after `last_event_id`, the buffered events after it
    /// are queued first; returns how many.
    fn join(
        &self,
        last_event_id: Option<u64>,
    ) -> (Membership<'_>, mpsc::UnboundedReceiver<Command>, usize) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut state = self.lock();

        let mut replayed = 0;
        if let Some(after) = last_event_id {
            for (_, envelope) in state.replay.iter().filter(|(id, _)| *id > after) {
                let _ = sender.send(Command::Event(envelope.clone()));
                replayed += 1;
            }
        }

        state.next_socket += 1;
        let id = state.next_socket;
        state.sockets.insert(id, sender);
        (Membership { hub: self, id }, receiver, replayed)
    }

    /// Publishes an event to every open socket and the replay buffer; returns its id.
    pub(crate) fn publish(&self, data: &RawValue) -> u64 {
        let mut state = self.lock();
        state.last_event_id += 1;
        let id = state.last_event_id;
        let envelope = format!(r#"{{"id":{id},"data":{}}}"#, data.get());

        if state.replay.len() == REPLAY_CAPACITY {
            state.replay.pop_front();
        }
        state.replay.push_back((id, envelope.clone()));
        for sender in state.sockets.values() {
            let _ = sender.send(Command::Event(envelope.clone()));
        }
        id
    }

    /// Sends `command` to every open socket; returns how many there were.
    pub(crate) fn command_all(&self, command: &Command) -> usize {
        let state = self.lock();
        for sender in state.sockets.values() {
            let _ = sender.send(command.clone());
        }
        state.sockets.len()
    }

    /// How many sockets are open.
    pub(crate) fn open(&self) -> usize {
        self.lock().sockets.len()
    }

    /// Drops every socket, empties the replay buffer and starts event ids again at 1.
    pub(crate) fn reset(&self) {
        let mut state = self.lock();
        for sender in state.sockets.values() {
            let _ = sender.send(Command::Drop);
        }
        state.replay.clear();
        state.last_event_id = 0;
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `GET /ws`: checks the upgrade, the access token and the resume point, then upgrades.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    kill: Option<Extension<KillSwitch>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let instance = uri.path();
    let rejected = |response: Response| {
        state
            .stats
            .record_realtime(|realtime| realtime.handshakes_rejected += 1);
        response
    };

    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let problem = Problem::status(rejection.status(), instance, rejection.body_text());
            return rejected(problem.into_response());
        }
    };

    let Some(token) = userinfo::bearer_token(&headers) else {
        return rejected(userinfo::unauthorized(instance, None));
    };
    let token = digest(token);
    let now = now_ms();
    let check = state
        .db
        .run(move |conn| Ok(store::check_access_token(conn, &token, now)?))
        .await;
    let user = match check {
        Ok(AccessCheck::Valid { username, .. }) => username,
        Ok(AccessCheck::Unknown) => {
            return rejected(userinfo::unauthorized(
                instance,
                Some("the access token is not valid"),
            ));
        }
        Ok(AccessCheck::Expired) => {
            return rejected(userinfo::unauthorized(
                instance,
                Some("the access token has expired"),
            ));
        }
        Ok(AccessCheck::Revoked) => {
            return rejected(userinfo::unauthorized(
                instance,
                Some("the access token has been revoked"),
            ));
        }
        Err(err) => return rejected(err.into_problem(instance).into_response()),
    };

    let last_event_id = match QueryParams::from_uri(&uri)
        .and_then(|params| params.parse::<u64>("last_event_id", "an event id", instance))
    {
        Ok(last_event_id) => last_event_id,
        Err(problem) => return rejected(problem.into_response()),
    };

    let offered_ours = upgrade
        .requested_protocols()
        .any(|protocol| protocol.as_bytes() == SUBPROTOCOL.as_bytes());
    let mut upgrade = upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES);
    if offered_ours {
        upgrade.set_selected_protocol(HeaderValue::from_static(SUBPROTOCOL));
    }

    debug!(user, ?last_event_id, "websocket upgrade");
    let kill = kill.map(|Extension(kill)| kill);
    upgrade.on_upgrade(move |socket| socket::serve(socket, state, kill, last_event_id))
}
