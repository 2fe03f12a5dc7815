//! Realtime channels: WebSockets that survive real networks.
//!
//! A [`Channel`] is one logical connection to a WebSocket endpoint of the backend that outlives
//! the TCP connections under it. Open one with [`Client::channel`](crate::Client::channel):
//!
//! ```no_run
//! # async fn run(client: roundtrip::Client) -> Result<(), roundtrip::Error> {
//! use std::time::Duration;
//! use futures_util::StreamExt;
//! use roundtrip::realtime::{ChannelEvent, ChannelState, Overflow};
//!
//! let channel = client
//!     .channel("/ws")
//!     .subprotocol("chat.v1")
//!     .ping_interval(Duration::from_secs(20))
//!     .queue(500, Overflow::DropOldest)
//!     .resume(true)
//!     .open()?;
//!
//! let mut events = std::pin::pin!(channel.events());
//! channel.send_text(r#"{"say": "hello"}"#)?;
//! while let Some(event) = events.next().await {
//!     match event {
//!         ChannelEvent::State(ChannelState::Reconnecting { attempt, delay, .. }) => {
//!             println!("reconnecting (retry {attempt}) in {delay:?}");
//!         }
//!         ChannelEvent::Event { id, data } => println!("event {id}: {data}"),
//!         ChannelEvent::Message(message) => println!("{message:?}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # What a channel does
//!
//! - **Connects** over rustls (the client's TLS configuration, *ring*, the same roots), to a URL
//!   resolved under the base URL; plain `ws://` only to loopback unless the client allows
//!   insecure HTTP. The upgrade request carries the client's credentials: for an OAuth session
//!   the current access token, refreshed first if due, and after a 401 refreshed and retried
//!   once.
//! - **Reconnects** after a drop, with exponential backoff and full jitter, capped, reset once a
//!   connection has been stable for a while. It pauses while the app reports the device offline
//!   and tries again at once when the network is back. It stops for good on
//!   [`Channel::close`], on a close code the app marked final, and on a failure that retrying
//!   cannot fix, such as a session the server ended ([`Error::SignInRequired`]).
//! - **Detects dead connections**: a ping every `ping_interval`; no pong within `pong_timeout`
//!   and the connection is replaced.
//! - **Queues** outgoing messages while disconnected (bounded, with an [`Overflow`] rule) and
//!   sends them in order once connected.
//! - **Resumes**: with [`ChannelBuilder::resume`], server messages shaped
//!   `{"id": N, "data": ...}` arrive as [`ChannelEvent::Event`], and a reconnect asks the server
//!   for everything after the last id with `?last_event_id=N`, so no event is lost to a drop.
//!
//! Delivery of outgoing messages is at most once: a message handed to a connection that breaks
//! before the server read it is lost, as with any WebSocket. Apps that need more acknowledge at
//! their own level, or send through events the server keeps.

mod backoff;
mod driver;
mod events;
mod queue;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::HeaderMap;
use tokio::sync::watch;
use url::Url;

use crate::internal::error::Failure;
use crate::internal::redact;
use crate::{Client, Error};

use backoff::ReconnectPolicy;
use events::Subscribers;
use queue::Outbox;

const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_QUEUE_CAPACITY: usize = 256;
const DEFAULT_EVENT_BUFFER: usize = 256;
const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// A message the app sends, or receives outside of an event envelope.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A text message (UTF-8).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

impl fmt::Debug for Message {
    // Messages may carry personal data: show their size, not their content.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Text(text) => write!(f, "Text({} bytes)", text.len()),
            Message::Binary(data) => write!(f, "Binary({} bytes)", data.len()),
        }
    }
}

impl Message {
    fn len(&self) -> usize {
        match self {
            Message::Text(text) => text.len(),
            Message::Binary(data) => data.len(),
        }
    }
}

/// What happens to a message sent while the outgoing queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// The oldest queued message is given up to make room: for state that newer messages
    /// replace (positions, typing indicators).
    DropOldest,
    /// The new message is given up and the queue stays as it was.
    DropNewest,
    /// The send fails with [`Error::QueueFull`] and nothing is given up. The default.
    #[default]
    Fail,
}

/// Where a channel stands.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ChannelState {
    /// Opening a connection. `attempt` is 0 for the first connection (and the first after the
    /// network came back), otherwise the number of the retry.
    Connecting {
        /// 0, or the number of the retry.
        attempt: u32,
    },
    /// Connected: messages flow.
    Connected {
        /// The subprotocol the server chose, if the channel asked for any.
        protocol: Option<String>,
    },
    /// The connection failed or was lost; the channel waits `delay`, then makes retry number
    /// `attempt`.
    Reconnecting {
        /// The number of the coming retry: 1 after the first failure, growing while failures
        /// follow each other, back to 1 after a stable connection.
        attempt: u32,
        /// How long the channel waits before the retry.
        delay: Duration,
        /// Why the last connection or attempt failed.
        cause: Error,
    },
    /// The app reported the device offline: nothing is attempted until it is back.
    WaitingForNetwork,
    /// The channel stopped for good.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
}

impl ChannelState {
    /// Whether the channel is connected.
    pub fn is_connected(&self) -> bool {
        matches!(self, ChannelState::Connected { .. })
    }

    /// Whether the channel stopped for good.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, ChannelState::Disconnected { .. })
    }
}

/// Why a channel stopped for good.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The app closed it, or dropped every handle to it.
    Closed,
    /// The server closed the connection with a code the app marked final with
    /// [`ChannelBuilder::final_close_codes`].
    ClosedByServer {
        /// The close code (RFC 6455, section 7.4).
        code: u16,
        /// The server's reason, possibly empty.
        reason: String,
    },
    /// A failure that retrying cannot fix: the session ended ([`Error::SignInRequired`]), the
    /// server refused the upgrade with a status such as 403 or 404, or the target is invalid.
    Failed(Error),
}

/// Something that happened on a channel, in the order it happened.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ChannelEvent {
    /// The channel's state changed.
    State(ChannelState),
    /// A message from the server.
    Message(Message),
    /// An event from the server (`{"id": N, "data": ...}`), on a channel opened with
    /// [`ChannelBuilder::resume`]. After it, a reconnect resumes after `id`.
    Event {
        /// The event's id; ids increase.
        id: u64,
        /// The event's `data`, as JSON text.
        data: String,
    },
}

/// Describes a channel before opening it. Get one from [`Client::channel`].
///
/// Setters never fail; the first invalid value is reported by [`ChannelBuilder::open`].
#[must_use = "a channel does nothing until it is opened"]
pub struct ChannelBuilder {
    client: Client,
    target: String,
    config: ChannelConfig,
    initial_event_id: Option<u64>,
    error: Option<Failure>,
}

/// Everything the driver needs to know about a channel, fixed when it opens.
#[derive(Clone, Debug)]
pub(crate) struct ChannelConfig {
    pub(crate) subprotocols: Vec<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) ping_interval: Duration,
    pub(crate) pong_timeout: Duration,
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) queue_capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) event_buffer: usize,
    pub(crate) final_close_codes: Vec<u16>,
    pub(crate) max_message_size: usize,
    pub(crate) resume: bool,
}

impl ChannelBuilder {
    pub(crate) fn new(client: Client, target: &str) -> ChannelBuilder {
        ChannelBuilder {
            client,
            target: target.to_owned(),
            config: ChannelConfig {
                subprotocols: Vec::new(),
                headers: HeaderMap::new(),
                ping_interval: DEFAULT_PING_INTERVAL,
                pong_timeout: DEFAULT_PONG_TIMEOUT,
                handshake_timeout: None,
                reconnect: ReconnectPolicy::default(),
                queue_capacity: DEFAULT_QUEUE_CAPACITY,
                overflow: Overflow::default(),
                event_buffer: DEFAULT_EVENT_BUFFER,
                final_close_codes: Vec::new(),
                max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
                resume: false,
            },
            initial_event_id: None,
            error: None,
        }
    }

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`); call once for each, in order of
    /// preference. The server must pick one of them, or the connection fails.
    pub fn subprotocol(mut self, name: &str) -> ChannelBuilder {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            self.keep_first_error(Failure::Invalid(format!("invalid subprotocol `{name}`")));
        } else {
            self.config.subprotocols.push(name.to_owned());
        }
        self
    }

    /// Sets a header on the upgrade request, replacing a default header of the same name.
    pub fn header(mut self, name: &str, value: &str) -> ChannelBuilder {
        match crate::client::parse_header(name, value) {
            Ok((name, value)) => {
                self.config.headers.insert(name, value);
            }
            Err(failure) => self.keep_first_error(failure),
        }
        self
    }

    /// How often a connected channel pings the server. Default: 30 s.
    pub fn ping_interval(mut self, interval: Duration) -> ChannelBuilder {
        self.config.ping_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long a ping may go unanswered (or unsent, when the network takes nothing) before
    /// the connection is declared dead and replaced. Default: 10 s. A dead connection is
    /// noticed within `ping_interval + pong_timeout`.
    pub fn pong_timeout(mut self, timeout: Duration) -> ChannelBuilder {
        self.config.pong_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long opening one connection (TCP, TLS and the upgrade) may take. Default: the
    /// client's connect timeout.
    pub fn handshake_timeout(mut self, timeout: Duration) -> ChannelBuilder {
        self.config.handshake_timeout = Some(timeout);
        self
    }

    /// The backoff between reconnects: after the *n*-th failure in a row, a random wait up to
    /// `min(max, initial × 2^(n-1))`. Default: 500 ms, capped at 30 s.
    pub fn reconnect_backoff(mut self, initial: Duration, max: Duration) -> ChannelBuilder {
        self.config.reconnect.initial_delay = initial;
        self.config.reconnect.max_delay = max.max(initial);
        self
    }

    /// How long a connection must stay up for the backoff to start over. Default: 30 s.
    pub fn stable_after(mut self, duration: Duration) -> ChannelBuilder {
        self.config.reconnect.stable_after = duration;
        self
    }

    /// How many outgoing messages wait while disconnected, and what happens to one more.
    /// Default: 256, [`Overflow::Fail`].
    pub fn queue(mut self, capacity: usize, overflow: Overflow) -> ChannelBuilder {
        self.config.queue_capacity = capacity.max(1);
        self.config.overflow = overflow;
        self
    }

    /// How many events each stream from [`Channel::events`] holds before the channel waits for
    /// the app to read. Default: 256.
    pub fn event_buffer(mut self, events: usize) -> ChannelBuilder {
        self.config.event_buffer = events.max(1);
        self
    }

    /// Close codes that end the channel for good when the server closes with them, instead of
    /// a reconnect; for example a code the backend uses for "this client is banned".
    pub fn final_close_codes(mut self, codes: impl IntoIterator<Item = u16>) -> ChannelBuilder {
        self.config.final_close_codes = codes.into_iter().collect();
        self
    }

    /// The largest message sent or received, in bytes. A larger incoming one breaks the
    /// connection (close code 1009, then a reconnect); a larger outgoing one is refused with
    /// [`Error::InvalidInput`]. Default: 16 MiB.
    pub fn max_message_size(mut self, bytes: usize) -> ChannelBuilder {
        self.config.max_message_size = bytes.max(1);
        self
    }

    /// Recognises event envelopes (`{"id": N, "data": ...}`) and, after a reconnect, asks the
    /// server to replay the events after the last one received. Off by default.
    pub fn resume(mut self, resume: bool) -> ChannelBuilder {
        self.config.resume = resume;
        self
    }

    /// Like [`ChannelBuilder::resume`], starting after `last_event_id`, for an app that kept the
    /// last id from an earlier run (see [`Channel::last_event_id`]).
    pub fn resume_from(mut self, last_event_id: u64) -> ChannelBuilder {
        self.config.resume = true;
        self.initial_event_id = Some(last_event_id);
        self
    }

    /// Opens the channel: checks the target and starts connecting in the background on the
    /// current tokio runtime. Connection failures are not errors here; they show up as
    /// [`ChannelState`] changes.
    ///
    /// Fails with [`Error::InvalidInput`] for an invalid setting or target, with
    /// [`Error::InsecureTransport`] for plain `ws://` off loopback, and with
    /// [`Error::Internal`] outside a tokio runtime.
    pub fn open(self) -> Result<Channel, Error> {
        if let Some(failure) = self.error {
            return Err(failure.into());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Internal("a channel must be opened inside a tokio runtime".into())
        })?;

        let shared = &self.client.shared;
        let http_url = wire::http_url(&shared.base_url, &self.target, shared.allow_insecure_http)?;
        let url = wire::websocket_url(&http_url)?;

        let inner = Arc::new(Inner {
            url,
            outbox: Outbox::new(self.config.queue_capacity, self.config.overflow),
            subscribers: Subscribers::new(self.config.event_buffer),
            state: watch::Sender::new(ChannelState::Connecting { attempt: 0 }),
            last_event_id: AtomicU64::new(self.initial_event_id.map_or(0, |id| id + 1)),
            max_message_size: self.config.max_message_size,
        });
        let (close, close_requested) = watch::channel(false);
        let driver = driver::Driver::new(
            self.client.clone(),
            http_url,
            self.config,
            Arc::clone(&inner),
            close_requested,
        );
        runtime.spawn(driver.run());

        Ok(Channel {
            handle: Arc::new(Handle { inner, close }),
        })
    }

    fn keep_first_error(&mut self, failure: Failure) {
        self.error.get_or_insert(failure);
    }
}

impl fmt::Debug for ChannelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBuilder")
            .field("target", &self.target.split('?').next().unwrap_or_default())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the app's handles and the driver share.
pub(crate) struct Inner {
    pub(crate) url: Url,
    pub(crate) outbox: Outbox,
    pub(crate) subscribers: Subscribers,
    pub(crate) state: watch::Sender<ChannelState>,
    /// The last event id received, plus one; 0 when there is none.
    pub(crate) last_event_id: AtomicU64,
    pub(crate) max_message_size: usize,
}

impl Inner {
    pub(crate) fn last_event_id(&self) -> Option<u64> {
        self.last_event_id.load(Ordering::Acquire).checked_sub(1)
    }
}

/// The app's side: dropping the last one closes the channel.
struct Handle {
    inner: Arc<Inner>,
    close: watch::Sender<bool>,
}

/// An open realtime channel. Cheap to clone; clones share the channel.
///
/// The channel runs in the background until [`Channel::close`] is called, every clone is
/// dropped, or it stops for good by itself (see [`DisconnectReason`]).
#[derive(Clone)]
pub struct Channel {
    handle: Arc<Handle>,
}

impl Channel {
    /// Queues a message; it is sent in order as soon as the channel is connected.
    ///
    /// Fails with [`Error::ChannelClosed`] once the channel stopped, with [`Error::QueueFull`]
    /// when the queue is full and the overflow rule is [`Overflow::Fail`], and with
    /// [`Error::InvalidInput`] for a message over the maximum size.
    pub fn send(&self, message: Message) -> Result<(), Error> {
        let inner = &self.handle.inner;
        if inner.state.borrow().is_disconnected() {
            return Err(Error::ChannelClosed);
        }
        if message.len() > inner.max_message_size {
            return Err(Error::InvalidInput(format!(
                "the message is larger than the channel's maximum of {} bytes",
                inner.max_message_size
            )));
        }
        inner.outbox.push(message)
    }

    /// Queues a text message. See [`Channel::send`].
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), Error> {
        self.send(Message::Text(text.into()))
    }

    /// Queues a binary message. See [`Channel::send`].
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Message::Binary(data.into()))
    }

    /// Every event from now on: state changes and messages, in order. The first stream made
    /// also gets the events from before it, since the channel opened.
    ///
    /// The stream ends after the channel stops. A stream that is not read holds the channel
    /// back once its buffer is full (see [`ChannelBuilder::event_buffer`]): messages wait in the
    /// network instead of being lost.
    pub fn events(&self) -> impl Stream<Item = ChannelEvent> + Send + 'static {
        self.handle.inner.subscribers.subscribe()
    }

    /// The current state.
    pub fn state(&self) -> ChannelState {
        self.handle.inner.state.borrow().clone()
    }

    /// The id of the last event received, to keep for [`ChannelBuilder::resume_from`].
    pub fn last_event_id(&self) -> Option<u64> {
        self.handle.inner.last_event_id()
    }

    /// How many messages wait in the outgoing queue.
    pub fn queued_messages(&self) -> usize {
        self.handle.inner.outbox.len()
    }

    /// Closes the channel: sends what is queued if connected, closes the connection with code
    /// 1000 and stops reconnecting. Completes once the channel stopped.
    pub async fn close(&self) {
        let _ = self.handle.close.send(true);
        let mut state = self.handle.inner.state.subscribe();
        let _ = state.wait_for(ChannelState::is_disconnected).await;
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("url", &redact::url(&self.handle.inner.url))
            .field("state", &*self.handle.inner.state.borrow())
            .finish_non_exhaustive()
    }
}
