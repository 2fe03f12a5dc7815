//! Realtime channels: the configuration record, the channel object, its events and the
//! listener that Kotlin's `Flow` and Swift's `AsyncStream` are built on.
//!
//! Events are read from the core's stream on a thread of the subscription's own, which calls
//! the listener once per event, in order. The listener may block (Kotlin's `trySendBlocking`
//! does when the collector is slow): the channel then waits instead of dropping messages.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::RoundtripError;
use crate::runtime;
use crate::types::Header;

/// What happens to a message sent while the outgoing queue is full.
#[derive(uniffi::Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// The oldest queued message is given up to make room.
    DropOldest,
    /// The new message is given up.
    DropNewest,
    /// The send throws `QueueFull`; the default.
    Fail,
}

/// Settings for a channel. Only `path` is required; see the Rust `ChannelBuilder` for each.
#[derive(uniffi::Record, Clone)]
pub struct ChannelConfig {
    /// The WebSocket path, relative to the client's base URL (`https` becomes `wss`).
    pub path: String,
    /// Subprotocols offered, in order of preference.
    #[uniffi(default)]
    pub subprotocols: Vec<String>,
    /// Extra headers on the upgrade request.
    #[uniffi(default)]
    pub headers: Vec<Header>,
    /// How often to ping. Default: 30 s.
    #[uniffi(default = None)]
    pub ping_interval_ms: Option<u64>,
    /// How long a ping may go unanswered before the connection is replaced. Default: 10 s.
    #[uniffi(default = None)]
    pub pong_timeout_ms: Option<u64>,
    /// How long opening one connection may take. Default: the client's connect timeout.
    #[uniffi(default = None)]
    pub handshake_timeout_ms: Option<u64>,
    /// Upper bound of the first reconnect wait, doubling after that. Default: 500 ms.
    #[uniffi(default = None)]
    pub initial_backoff_ms: Option<u64>,
    /// Longest reconnect wait. Default: 30 s.
    #[uniffi(default = None)]
    pub max_backoff_ms: Option<u64>,
    /// How long a connection must stay up for the backoff to start over. Default: 30 s.
    #[uniffi(default = None)]
    pub stable_after_ms: Option<u64>,
    /// How many outgoing messages wait while disconnected. Default: 256.
    #[uniffi(default = None)]
    pub queue_capacity: Option<u32>,
    /// What happens to a message sent to a full queue. Default: `Fail`.
    #[uniffi(default = None)]
    pub overflow: Option<Overflow>,
    /// Close codes after which the channel stops instead of reconnecting.
    #[uniffi(default)]
    pub final_close_codes: Vec<u16>,
    /// Largest message sent or received. Default: 16 MiB.
    #[uniffi(default = None)]
    pub max_message_bytes: Option<u64>,
    /// Recognise `{"id": N, "data": ...}` events and resume after the last one on reconnect.
    #[uniffi(default = false)]
    pub resume: bool,
    /// Resume after this event id (implies `resume`), kept from an earlier run.
    #[uniffi(default = None)]
    pub last_event_id: Option<u64>,
}

/// Where a channel stands.
#[derive(uniffi::Enum, Clone, Debug)]
pub enum ChannelState {
    /// Opening a connection; `attempt` is 0 for a first connection, else the retry's number.
    Connecting {
        /// 0, or the number of the retry.
        attempt: u32,
    },
    /// Connected.
    Connected {
        /// The subprotocol the server chose.
        protocol: Option<String>,
    },
    /// Waiting `delay_ms` before retry number `attempt`, after `cause`.
    Reconnecting {
        /// The number of the coming retry.
        attempt: u32,
        /// The wait before it.
        delay_ms: u64,
        /// Why the last connection or attempt failed.
        cause: RoundtripError,
    },
    /// The app reported no network; nothing is attempted until it is back.
    WaitingForNetwork,
    /// Stopped for good.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
}

/// Why a channel stopped for good.
#[derive(uniffi::Enum, Clone, Debug)]
pub enum DisconnectReason {
    /// The app closed it.
    Closed,
    /// The server closed it with a code marked final.
    ClosedByServer {
        /// The close code.
        code: u16,
        /// The server's reason.
        reason: String,
    },
    /// A failure retrying cannot fix, such as `SignInRequired`.
    Failed {
        /// The failure.
        error: RoundtripError,
    },
}

/// Something that happened on a channel.
#[derive(uniffi::Enum, Clone, Debug)]
pub enum ChannelEvent {
    /// The state changed.
    State {
        /// The new state.
        state: ChannelState,
    },
    /// A text message from the server.
    Text {
        /// The text.
        text: String,
    },
    /// A binary message from the server.
    Binary {
        /// The bytes.
        data: Vec<u8>,
    },
    /// An event (`{"id": N, "data": ...}`) on a channel with `resume`.
    Event {
        /// The event's id.
        id: u64,
        /// Its `data`, as JSON text.
        data: String,
    },
}

/// Receives a channel's events. Implement it in Kotlin or Swift, or use the helpers
/// (`Channel.events()`: a `Flow` in Kotlin, an `AsyncStream` in Swift).
#[uniffi::export(with_foreign)]
pub trait ChannelListener: Send + Sync {
    /// Called once per event, in order, from a thread of the subscription's own.
    fn on_event(&self, event: ChannelEvent);
}

/// A WebSocket channel that reconnects by itself. Freeing the object (`close()` in Kotlin)
/// also closes the channel.
#[derive(uniffi::Object)]
pub struct Channel {
    inner: roundtrip::realtime::Channel,
}

#[uniffi::export]
impl Channel {
    /// Queues a text message, sent in order once connected. Throws `ChannelClosed`,
    /// `QueueFull` or `InvalidInput` (too large).
    pub fn send_text(&self, text: String) -> Result<(), RoundtripError> {
        Ok(self.inner.send_text(text)?)
    }

    /// Queues a binary message. See `send_text`.
    pub fn send_binary(&self, data: Vec<u8>) -> Result<(), RoundtripError> {
        Ok(self.inner.send_binary(data)?)
    }

    /// The current state.
    pub fn state(&self) -> ChannelState {
        self.inner.state().into()
    }

    /// The id of the last event received.
    pub fn last_event_id(&self) -> Option<u64> {
        self.inner.last_event_id()
    }

    /// How many messages wait in the outgoing queue.
    pub fn queued_messages(&self) -> u64 {
        self.inner.queued_messages() as u64
    }

    /// Calls `listener` with every event from now on (the first subscription also gets the
    /// events since the channel opened), until the channel stops or the subscription is
    /// cancelled.
    pub fn subscribe(&self, listener: Arc<dyn ChannelListener>) -> Arc<ChannelSubscription> {
        let events = self.inner.events();
        let cancelled = CancellationToken::new();
        let stop = cancelled.clone();
        let spawned = std::thread::Builder::new()
            .name("roundtrip-channel-events".into())
            .spawn(move || {
                runtime::block_on(async move {
                    let mut events = Box::pin(events);
                    loop {
                        let event = tokio::select! {
                            () = stop.cancelled() => break,
                            event = events.next() => event,
                        };
                        match event {
                            Some(event) => listener.on_event(event.into()),
                            None => break,
                        }
                    }
                });
            });
        if let Err(error) = spawned {
            warn!(%error, "could not start the event thread");
        }
        Arc::new(ChannelSubscription { cancelled })
    }

    /// Closes the channel (Rust's `Channel::close`): sends what is queued, closes with 1000,
    /// stops reconnecting. Returns once the channel stopped.
    pub async fn disconnect(&self) {
        let channel = self.inner.clone();
        let closing = async move {
            channel.close().await;
            Ok(())
        };
        let _ = runtime::run(closing, None).await;
    }
}

/// A listener's subscription; cancel it (or free it) to stop the calls.
#[derive(uniffi::Object)]
pub struct ChannelSubscription {
    cancelled: CancellationToken,
}

#[uniffi::export]
impl ChannelSubscription {
    /// Stops calling the listener.
    pub fn cancel(&self) {
        self.cancelled.cancel();
    }
}

impl Drop for ChannelSubscription {
    fn drop(&mut self) {
        self.cancelled.cancel();
    }
}

impl Channel {
    /// Opens a channel of `client` as `config` says.
    pub(crate) fn open(
        client: &roundtrip::Client,
        config: ChannelConfig,
    ) -> Result<Arc<Channel>, RoundtripError> {
        let ms = Duration::from_millis;
        let mut builder = client.channel(&config.path);
        for protocol in &config.subprotocols {
            builder = builder.subprotocol(protocol);
        }
        for header in &config.headers {
            builder = builder.header(&header.name, &header.value);
        }
        if let Some(interval) = config.ping_interval_ms {
            builder = builder.ping_interval(ms(interval));
        }
        if let Some(timeout) = config.pong_timeout_ms {
            builder = builder.pong_timeout(ms(timeout));
        }
        if let Some(timeout) = config.handshake_timeout_ms {
            builder = builder.handshake_timeout(ms(timeout));
        }
        if config.initial_backoff_ms.is_some() || config.max_backoff_ms.is_some() {
            let initial = ms(config.initial_backoff_ms.unwrap_or(500));
            let max = ms(config.max_backoff_ms.unwrap_or(30_000));
            builder = builder.reconnect_backoff(initial, max);
        }
        if let Some(stable) = config.stable_after_ms {
            builder = builder.stable_after(ms(stable));
        }
        let overflow = config.overflow.unwrap_or(Overflow::Fail).into();
        let capacity = config
            .queue_capacity
            .map_or(256, |capacity| capacity as usize);
        builder = builder
            .queue(capacity, overflow)
            .final_close_codes(config.final_close_codes)
            .resume(config.resume);
        if let Some(bytes) = config.max_message_bytes {
            builder = builder.max_message_size(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        if let Some(id) = config.last_event_id {
            builder = builder.resume_from(id);
        }

        let inner = {
            let _runtime = runtime::enter();
            builder.open()
        }?;
        Ok(Arc::new(Channel { inner }))
    }
}

impl From<Overflow> for roundtrip::realtime::Overflow {
    fn from(overflow: Overflow) -> Self {
        match overflow {
            Overflow::DropOldest => roundtrip::realtime::Overflow::DropOldest,
            Overflow::DropNewest => roundtrip::realtime::Overflow::DropNewest,
            Overflow::Fail => roundtrip::realtime::Overflow::Fail,
        }
    }
}

impl From<roundtrip::realtime::ChannelState> for ChannelState {
    fn from(state: roundtrip::realtime::ChannelState) -> Self {
        use roundtrip::realtime::ChannelState as Core;
        match state {
            Core::Connecting { attempt } => ChannelState::Connecting { attempt },
            Core::Connected { protocol } => ChannelState::Connected { protocol },
            Core::Reconnecting {
                attempt,
                delay,
                cause,
            } => ChannelState::Reconnecting {
                attempt,
                delay_ms: delay.as_millis() as u64,
                cause: cause.into(),
            },
            Core::WaitingForNetwork => ChannelState::WaitingForNetwork,
            Core::Disconnected { reason } => ChannelState::Disconnected {
                reason: reason.into(),
            },
            _ => ChannelState::Disconnected {
                reason: DisconnectReason::Closed,
            },
        }
    }
}

impl From<roundtrip::realtime::DisconnectReason> for DisconnectReason {
    fn from(reason: roundtrip::realtime::DisconnectReason) -> Self {
        use roundtrip::realtime::DisconnectReason as Core;
        match reason {
            Core::ClosedByServer { code, reason } => {
                DisconnectReason::ClosedByServer { code, reason }
            }
            Core::Failed(error) => DisconnectReason::Failed {
                error: error.into(),
            },
            _ => DisconnectReason::Closed,
        }
    }
}

impl From<roundtrip::realtime::ChannelEvent> for ChannelEvent {
    fn from(event: roundtrip::realtime::ChannelEvent) -> Self {
        use roundtrip::realtime::{ChannelEvent as Core, Message};
        match event {
            Core::State(state) => ChannelEvent::State {
                state: state.into(),
            },
            Core::Message(Message::Text(text)) => ChannelEvent::Text { text },
            Core::Message(Message::Binary(data)) => ChannelEvent::Binary { data: data.into() },
            Core::Event { id, data } => ChannelEvent::Event { id, data },
            Core::Message(_) | _ => ChannelEvent::Text {
                text: String::new(),
            },
        }
    }
}
