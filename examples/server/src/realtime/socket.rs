//! One open WebSocket: echo, publish, and the commands of the test controls.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{debug, trace};

use super::Command;
use crate::app::AppState;
use crate::conn::KillSwitch;

/// How long a silenced socket is kept before it is dropped, so none lingers for ever.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// How long a closing socket waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A client's request to publish: `{"publish": DATA}`.
#[derive(Deserialize)]
struct Publish<'a> {
    #[serde(borrow)]
    publish: &'a RawValue,
}

/// Serves a socket until the client leaves, a command ends it, or the server shuts down.
pub(super) async fn serve(
    mut socket: WebSocket,
    state: AppState,
    kill: Option<KillSwitch>,
    last_event_id: Option<u64>,
) {
    let hub = &state.realtime;
    let (_membership, mut commands, replayed) = hub.join(last_event_id);
    state.stats.record_realtime(|realtime| {
        realtime.connections_accepted += 1;
        if last_event_id.is_some() {
            realtime.resumed += 1;
            realtime.events_replayed += replayed as u64;
        }
    });
    debug!(?last_event_id, replayed, "websocket open");

    let mut shutdown = hub.shutdown.clone();
    let mut silent = false;
    // Armed when the socket is silenced; not polled before.
    let silence_limit = tokio::time::sleep(SILENCE_LIMIT);
    tokio::pin!(silence_limit);

    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Event(envelope)) if !silent => {
                    if socket.send(Message::text(envelope)).await.is_err() {
                        break;
                    }
                }
                Some(Command::Event(_)) => {}
                Some(Command::Drop) | None => {
                    abort(kill.as_ref());
                    break;
                }
                Some(Command::Silence) => {
                    debug!("websocket silenced");
                    silent = true;
                    silence_limit
                        .as_mut()
                        .reset(tokio::time::Instant::now() + SILENCE_LIMIT);
                }
                Some(Command::Close { code, reason }) => {
                    close(&mut socket, code, reason).await;
                    break;
                }
            },
            // Not reading is what keeps a silenced socket from answering pings.
            received = socket.recv(), if !silent => {
                let Some(Ok(message)) = received else { break };
                if !handle(&mut socket, &state, message).await {
                    break;
                }
            }
            () = &mut silence_limit, if silent => {
                abort(kill.as_ref());
                break;
            }
            () = stopping(&mut shutdown) => {
                close(&mut socket, 1001, "the server is shutting down".to_owned()).await;
                break;
            }
        }
    }
    debug!("websocket closed");
}

/// Completes when the server begins to shut down (or is gone).
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await.map(|_| ());
}

/// Echoes or publishes one message; `false` when the socket is done.
async fn handle(socket: &mut WebSocket, state: &AppState, message: Message) -> bool {
    let reply = match message {
        Message::Text(text) => {
            state
                .stats
                .record_realtime(|realtime| realtime.messages_received += 1);
            if let Ok(request) = serde_json::from_str::<Publish<'_>>(text.as_str()) {
                let id = state.realtime.publish(request.publish);
                state
                    .stats
                    .record_realtime(|realtime| realtime.events_published += 1);
                trace!(id, "event published by a client");
                return true;
            }
            Message::Text(text)
        }
        Message::Binary(data) => {
            state
                .stats
                .record_realtime(|realtime| realtime.messages_received += 1);
            Message::Binary(data)
        }
        // Pings are answered by the WebSocket layer as they are read.
        Message::Ping(_) | Message::Pong(_) => return true,
        Message::Close(_) => return false,
    };
    socket.send(reply).await.is_ok()
}

/// Sends a close frame and waits briefly for the client's.
async fn close(socket: &mut WebSocket, code: u16, reason: String) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Throws the connection's kill switch: the socket is reset as it is dropped.
fn abort(kill: Option<&KillSwitch>) {
    match kill {
        Some(kill) => kill.kill(),
        None => debug!("no kill switch; the socket closes without a reset"),
    }
}
