//! The task behind a channel: connects, serves a connection, and reconnects when it is lost.
//!
//! It loops over the steps the pure [`Reconnect`] machine gives: connect, wait, pause while
//! offline, or stop. While connected it serves the socket: sends what is queued, reads what
//! arrives, pings on a timer and gives the connection up when a pong is overdue. The app's
//! close request and the network signal are watched at every step, so neither waits for a
//! timer to run out.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt, ready};
use http::header::{SEC_WEBSOCKET_PROTOCOL, USER_AGENT};
use http::{HeaderMap, HeaderValue};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tracing::{Instrument, debug, debug_span, info, trace, warn};
use url::{Host, Url};

use crate::client::Auth;
use crate::internal::{pipeline, redact};
use crate::realtime::backoff::{Next, Reconnect};
use crate::realtime::queue::Outbox;
use crate::realtime::{
    ChannelConfig, ChannelEvent, ChannelState, DisconnectReason, Inner, Message, wire,
};
use crate::{Client, Error, RetryClass};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How many already-received messages are handled before the driver looks at its timers and
/// the outgoing queue again.
const READ_BATCH: usize = 256;

/// How many queued messages are taken for the socket at a time.
const WRITE_BATCH: usize = 64;

/// How many messages at most are handed to the socket between two flushes.
const FLUSH_EVERY: usize = 1024;

/// How an open connection ended.
enum End {
    /// The app closed the channel.
    Closed,
    /// The app reported the device offline.
    Offline,
    /// The connection broke, was found dead, or the server closed it with a code that is not
    /// final: reconnect.
    Lost(Error),
    /// The server closed it with a code the app marked final.
    Final { code: u16, reason: String },
}

pub(crate) struct Driver {
    link: Link,
    signals: Signals,
}

/// Everything needed to open and serve connections.
struct Link {
    client: Client,
    http_url: Url,
    config: ChannelConfig,
    inner: Arc<Inner>,
}

/// What the driver watches besides the socket.
struct Signals {
    close_requested: watch::Receiver<bool>,
    online: watch::Receiver<bool>,
}

/// Completes when the app closes the channel or drops every handle to it.
async fn closing(close_requested: &mut watch::Receiver<bool>) {
    let _ = close_requested.wait_for(|closing| *closing).await;
}

/// Completes with the new value once the online flag differs from `current`.
async fn network_change(online: &mut watch::Receiver<bool>, current: bool) -> bool {
    let changed = online
        .wait_for(|online| *online != current)
        .await
        .map(|online| *online);
    match changed {
        Ok(online) => online,
        // The client, and with it the sender, outlives the driver.
        Err(_) => std::future::pending().await,
    }
}

impl Driver {
    pub(crate) fn new(
        client: Client,
        http_url: Url,
        config: ChannelConfig,
        inner: Arc<Inner>,
        close_requested: watch::Receiver<bool>,
    ) -> Driver {
        let online = client.connectivity().subscribe();
        Driver {
            link: Link {
                client,
                http_url,
                config,
                inner,
            },
            signals: Signals {
                close_requested,
                online,
            },
        }
    }

    pub(crate) async fn run(self) {
        let span = debug_span!("channel", url = %redact::url(&self.link.inner.url));
        self.drive().instrument(span).await;
    }

    async fn drive(self) {
        let Driver { link, mut signals } = self;
        let online = *signals.online.borrow_and_update();
        let mut machine = Reconnect::new(link.config.reconnect.clone(), online);
        let mut next = machine.start();
        let mut reason = DisconnectReason::Closed;
        let mut cause = Error::Connection("not connected yet".into());
        info!("channel opened");

        loop {
            match next {
                Next::Stop => break,
                Next::Pause => {
                    link.publish(ChannelState::WaitingForNetwork).await;
                    tokio::select! {
                        () = closing(&mut signals.close_requested) => next = machine.stop(),
                        online = network_change(&mut signals.online, machine.is_online()) => {
                            next = machine.network(online).unwrap_or(next);
                        }
                    }
                }
                Next::Wait { attempt, delay } => {
                    link.publish(ChannelState::Reconnecting {
                        attempt,
                        delay,
                        cause: cause.clone(),
                    })
                    .await;
                    tokio::select! {
                        () = tokio::time::sleep(delay) => next = Next::Connect { attempt },
                        () = closing(&mut signals.close_requested) => next = machine.stop(),
                        online = network_change(&mut signals.online, machine.is_online()) => {
                            next = machine.network(online).unwrap_or(next);
                        }
                    }
                }
                Next::Connect { attempt } => {
                    link.publish(ChannelState::Connecting { attempt }).await;
                    let opened = tokio::select! {
                        opened = link.connect() => opened,
                        () = closing(&mut signals.close_requested) => {
                            next = machine.stop();
                            continue;
                        }
                        online = network_change(&mut signals.online, machine.is_online()) => {
                            next = machine.network(online).unwrap_or(next);
                            continue;
                        }
                    };

                    let (socket, protocol) = match opened {
                        Ok(opened) => opened,
                        Err(error) => {
                            next = machine.failed(
                                Instant::now(),
                                error.retry_class(),
                                fastrand::f64(),
                            );
                            if next == Next::Stop {
                                warn!(%error, "connecting failed for good");
                                reason = DisconnectReason::Failed(error);
                            } else {
                                debug!(%error, attempt, "connecting failed");
                                cause = error;
                            }
                            continue;
                        }
                    };

                    machine.connected(Instant::now());
                    info!(protocol = protocol.as_deref(), "channel connected");
                    link.publish(ChannelState::Connected { protocol }).await;
                    match link.serve(socket, &mut signals).await {
                        End::Closed => next = machine.stop(),
                        End::Offline => {
                            info!("device offline; connection given up");
                            next = machine.network(false).unwrap_or(Next::Pause);
                        }
                        End::Lost(error) => {
                            warn!(%error, "connection lost");
                            next = machine.failed(Instant::now(), RetryClass::Now, fastrand::f64());
                            cause = error;
                        }
                        End::Final { code, reason: text } => {
                            info!(code, "the server closed the channel for good");
                            reason = DisconnectReason::ClosedByServer { code, reason: text };
                            next = machine.stop();
                        }
                    }
                }
            }
        }

        let dropped = link.inner.outbox.clear();
        if dropped > 0 {
            debug!(dropped, "queued messages given up");
        }
        info!(?reason, "channel stopped");
        link.publish(ChannelState::Disconnected { reason }).await;
        link.inner.subscribers.close();
    }
}

impl Link {
    /// Makes the state current and tells the app's streams.
    async fn publish(&self, state: ChannelState) {
        debug!(?state, "channel state");
        self.inner.state.send_replace(state.clone());
        self.inner
            .subscribers
            .deliver(vec![ChannelEvent::State(state)])
            .await;
    }

    /// Opens one connection, refreshing the access token and trying once more after a 401.
    async fn connect(&self) -> Result<(Socket, Option<String>), Error> {
        let shared = &self.client.shared;
        let timeout = self
            .config
            .handshake_timeout
            .unwrap_or(shared.connect_timeout);
        let mut reauthenticated = false;

        loop {
            let (request, generation) = self.upgrade_request().await?;
            let outcome = match tokio::time::timeout(timeout, self.handshake(request)).await {
                Ok(outcome) => outcome,
                Err(_elapsed) => Err(Error::Timeout),
            };

            // A 401 means the server did not accept the token: refresh it, unless it was already
            // replaced, and try once more.
            match (outcome, generation, &shared.auth) {
                (Err(error), Some(generation), Some(Auth::OAuth(engine)))
                    if error.status() == Some(401) && !reauthenticated =>
                {
                    debug!("access token rejected at the upgrade; refreshing");
                    engine.rejected(generation).await?;
                    reauthenticated = true;
                }
                (outcome, _, _) => return outcome,
            }
        }
    }

    /// The upgrade request: URL with the resume point, credentials, headers, subprotocols.
    async fn upgrade_request(&self) -> Result<(Request, Option<u64>), Error> {
        let shared = &self.client.shared;
        let mut url = self.http_url.clone();
        let mut headers = shared.default_headers.clone();
        headers.extend(self.config.headers.clone());

        let generation = if url.origin() == shared.base_url.origin() {
            pipeline::authenticate(shared, &mut url, &mut headers).await?
        } else {
            None
        };
        if self.config.resume
            && let Some(id) = self.inner.last_event_id()
        {
            url.query_pairs_mut()
                .append_pair(wire::LAST_EVENT_ID, &id.to_string());
        }

        let url = wire::websocket_url(&url)?;
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|error| Error::InvalidInput(format!("upgrade request: {error}")))?;
        if !headers.contains_key(USER_AGENT)
            && let Ok(agent) = HeaderValue::from_str(&shared.user_agent)
        {
            headers.insert(USER_AGENT, agent);
        }
        if !self.config.subprotocols.is_empty() {
            let offered = self.config.subprotocols.join(", ");
            let value = HeaderValue::from_str(&offered)
                .map_err(|error| Error::InvalidInput(format!("subprotocols: {error}")))?;
            headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
        }
        merge(request.headers_mut(), headers);
        Ok((request, generation))
    }

    /// TCP, TLS (for `wss`) and the upgrade.
    async fn handshake(&self, request: Request) -> Result<(Socket, Option<String>), Error> {
        let url = &self.inner.url;
        let port = url.port_or_known_default().unwrap_or(443);
        let connected = match url.host() {
            Some(Host::Ipv4(address)) => TcpStream::connect((address, port)).await,
            Some(Host::Ipv6(address)) => TcpStream::connect((address, port)).await,
            Some(Host::Domain(name)) => TcpStream::connect((name, port)).await,
            None => return Err(Error::InvalidInput("the channel URL has no host".into())),
        };
        let tcp = connected.map_err(|error| io_error("connect", &error))?;
        if let Err(error) = tcp.set_nodelay(true) {
            trace!(%error, "could not disable Nagle's algorithm");
        }

        let config = WebSocketConfig::default()
            .max_message_size(Some(self.config.max_message_size))
            .max_frame_size(Some(self.config.max_message_size));
        let connector = Connector::Rustls(Arc::clone(&self.client.shared.websocket_tls));
        let (socket, response) = tokio_tungstenite::client_async_tls_with_config(
            request,
            tcp,
            Some(config),
            Some(connector),
        )
        .await
        .map_err(websocket_error)?;

        let protocol = response
            .headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok((socket, protocol))
    }

    /// Serves one connection until it ends.
    ///
    /// Reading and writing proceed side by side: a write the network holds up never stops the
    /// driver from reading, so two peers that both send a lot cannot block each other.
    async fn serve(&self, socket: Socket, signals: &mut Signals) -> End {
        let (mut sink, mut stream) = socket.split();
        let mut writer = Writer::default();
        let ping_interval = self.config.ping_interval;
        let mut next_ping = tokio::time::Instant::now() + ping_interval;
        let mut pong_due: Option<tokio::time::Instant> = None;
        let mut pings: u64 = 0;
        // One timer for the whole connection, moved instead of made anew for every message.
        let timer = tokio::time::sleep_until(next_ping);
        tokio::pin!(timer);

        let end = loop {
            if writer.is_idle() {
                writer.take_from(&self.inner.outbox);
            }
            let wake = pong_due.map_or(next_ping, |due| due.min(next_ping));
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }

            tokio::select! {
                () = closing(&mut signals.close_requested) => {
                    self.close_gracefully(&mut writer, sink, stream).await;
                    return End::Closed;
                }
                _ = network_change(&mut signals.online, true) => break End::Offline,
                () = self.inner.outbox.arrived(), if writer.is_idle() => {}
                written = poll_fn(|cx| writer.poll_write(&mut sink, &self.inner.outbox, cx)), if !writer.is_idle() => {
                    if let Err(error) = written {
                        break End::Lost(websocket_error(error));
                    }
                }
                () = &mut timer => {
                    let now = tokio::time::Instant::now();
                    if pong_due.is_some_and(|due| now >= due) {
                        debug!("no pong in time; the connection is dead");
                        break End::Lost(Error::Connection(
                            "no pong within the timeout: the connection is dead".into(),
                        ));
                    }
                    if now >= next_ping {
                        pings += 1;
                        trace!(pings, "ping");
                        writer.ping(pings);
                        // A ping the network does not take counts as unanswered too.
                        pong_due.get_or_insert(now + self.config.pong_timeout);
                        next_ping = now + ping_interval;
                    }
                }
                received = stream.next() => {
                    let started = tokio::time::Instant::now();
                    let mut received = received;
                    // Take what is already buffered in one go, up to a bound, before looking
                    // at the timers and the queue again.
                    let mut ended = None;
                    let mut events = Vec::new();
                    for handled in 1..=READ_BATCH {
                        let message = match received {
                            Some(Ok(message)) => message,
                            Some(Err(error)) => {
                                ended = Some(End::Lost(websocket_error(error)));
                                break;
                            }
                            None => {
                                ended = Some(End::Lost(Error::Connection(
                                    "the server closed the connection".into(),
                                )));
                                break;
                            }
                        };
                        let outcome = self.receive(message, &mut sink, &mut pong_due, &mut events);
                        if let Some(end) = outcome.await {
                            ended = Some(end);
                            break;
                        }
                        if handled == READ_BATCH {
                            break;
                        }
                        match stream.next().now_or_never() {
                            Some(next) => received = next,
                            None => break,
                        }
                    }
                    self.inner.subscribers.deliver(events).await;
                    if let Some(end) = ended {
                        break end;
                    }
                    // Time spent waiting for the app to take messages is not the server's.
                    if let Some(due) = &mut pong_due {
                        *due += started.elapsed();
                    }
                }
            }
        };

        // Messages never handed to the socket keep their place for the next connection.
        self.inner.outbox.put_back(writer.into_unsent());
        end
    }

    /// Handles one message from the server: an event for the app goes to `events`; `Some` when
    /// the message ends the connection.
    async fn receive(
        &self,
        message: WsMessage,
        sink: &mut Sink,
        pong_due: &mut Option<tokio::time::Instant>,
        events: &mut Vec<ChannelEvent>,
    ) -> Option<End> {
        let event = match message {
            WsMessage::Text(text) => {
                let event = self
                    .config
                    .resume
                    .then(|| wire::parse_event(&text))
                    .flatten();
                match event {
                    Some((id, data)) => {
                        self.inner
                            .last_event_id
                            .store(id.saturating_add(1), Ordering::Release);
                        ChannelEvent::Event { id, data }
                    }
                    None => ChannelEvent::Message(Message::Text(text.as_str().to_owned())),
                }
            }
            WsMessage::Binary(data) => ChannelEvent::Message(Message::Binary(data)),
            WsMessage::Pong(_) => {
                *pong_due = None;
                return None;
            }
            // tungstenite answers pings by itself on the next read or write.
            WsMessage::Ping(_) | WsMessage::Frame(_) => return None,
            WsMessage::Close(frame) => {
                let (code, reason) = frame.map_or((1005, String::new()), |frame| {
                    (u16::from(frame.code), frame.reason.as_str().to_owned())
                });
                // Send the close reply tungstenite queued; the server may be gone already.
                let _ = tokio::time::timeout(self.config.pong_timeout, sink.flush()).await;
                if self.config.final_close_codes.contains(&code) {
                    return Some(End::Final { code, reason });
                }
                return Some(End::Lost(Error::Connection(format!(
                    "the server closed the connection with code {code}"
                ))));
            }
        };
        trace!("message received");
        events.push(event);
        None
    }

    /// Sends what is queued, then closes with 1000 and waits briefly for the server's reply,
    /// delivering the messages that arrive meanwhile.
    async fn close_gracefully(&self, writer: &mut Writer, mut sink: Sink, mut stream: Stream) {
        let bound = self.config.pong_timeout.min(Duration::from_secs(2));
        let closing = async {
            loop {
                if writer.is_idle() {
                    writer.take_from(&self.inner.outbox);
                    if writer.is_idle() {
                        break;
                    }
                }
                if poll_fn(|cx| writer.poll_write(&mut sink, &self.inner.outbox, cx))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            if sink.send(WsMessage::Close(Some(frame))).await.is_err() {
                return;
            }
            // What the server sent before it saw the close is still delivered.
            let mut pong_due = None;
            while let Some(Ok(message)) = stream.next().await {
                let mut events = Vec::new();
                let end = self
                    .receive(message, &mut sink, &mut pong_due, &mut events)
                    .await;
                self.inner.subscribers.deliver(events).await;
                if end.is_some() {
                    return;
                }
            }
        };
        if tokio::time::timeout(bound, closing).await.is_err() {
            debug!("the server did not answer the close in time");
        }
    }
}

type Sink = SplitSink<Socket, WsMessage>;
type Stream = SplitStream<Socket>;

/// What goes to the socket next: a batch taken from the outbox, and pings.
#[derive(Default)]
struct Writer {
    pending: VecDeque<Outgoing>,
    unflushed: bool,
    /// Messages handed to the socket since the last flush.
    since_flush: usize,
}

enum Outgoing {
    App(Message),
    Ping(u64),
}

impl Writer {
    /// Nothing to hand to the socket and nothing to flush.
    fn is_idle(&self) -> bool {
        self.pending.is_empty() && !self.unflushed
    }

    fn take_from(&mut self, outbox: &Outbox) {
        self.pending
            .extend(outbox.take(WRITE_BATCH).into_iter().map(Outgoing::App));
    }

    fn ping(&mut self, number: u64) {
        self.pending.push_front(Outgoing::Ping(number));
    }

    /// Hands pending messages to the socket, topping them up from `outbox` up to
    /// [`FLUSH_EVERY`] messages, then flushes: many small messages share one write to the
    /// network. A message leaves `pending` only once the socket took it, so cancelling this
    /// loses nothing.
    fn poll_write(
        &mut self,
        sink: &mut Sink,
        outbox: &Outbox,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), tungstenite::Error>> {
        loop {
            if self.pending.is_empty() {
                if self.since_flush >= FLUSH_EVERY {
                    break;
                }
                self.take_from(outbox);
                if self.pending.is_empty() {
                    break;
                }
            }
            ready!(sink.poll_ready_unpin(cx))?;
            let message = match self.pending.pop_front() {
                Some(Outgoing::App(message)) => to_websocket(message),
                Some(Outgoing::Ping(number)) => {
                    WsMessage::Ping(number.to_be_bytes().to_vec().into())
                }
                None => break,
            };
            sink.start_send_unpin(message)?;
            self.unflushed = true;
            self.since_flush += 1;
        }
        if self.unflushed {
            ready!(sink.poll_flush_unpin(cx))?;
            self.unflushed = false;
        }
        self.since_flush = 0;
        Poll::Ready(Ok(()))
    }

    /// The app's messages the socket never took, in order.
    fn into_unsent(self) -> Vec<Message> {
        self.pending
            .into_iter()
            .filter_map(|outgoing| match outgoing {
                Outgoing::App(message) => Some(message),
                Outgoing::Ping(_) => None,
            })
            .collect()
    }
}

/// Adds `headers` to the upgrade request, keeping the ones tungstenite set for the handshake.
fn merge(request: &mut HeaderMap, headers: HeaderMap) {
    let mut current = None;
    for (name, value) in headers {
        if let Some(name) = name {
            current = Some(name);
        }
        if let Some(name) = &current {
            request.append(name.clone(), value);
        }
    }
}

fn to_websocket(message: Message) -> WsMessage {
    match message {
        Message::Text(text) => WsMessage::Text(text.into()),
        Message::Binary(data) => WsMessage::Binary(data),
    }
}

fn io_error(step: &str, error: &std::io::Error) -> Error {
    if error.kind() == std::io::ErrorKind::TimedOut {
        return Error::Timeout;
    }
    Error::Connection(format!("{step}: {error}"))
}

/// The one mapping of tungstenite's errors to the public error.
fn websocket_error(error: tungstenite::Error) -> Error {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let body = response.body().as_deref().unwrap_or_default();
            pipeline::status_failure(status, response.headers(), body).into_public()
        }
        tungstenite::Error::Io(error) if error.kind() == std::io::ErrorKind::TimedOut => {
            Error::Timeout
        }
        tungstenite::Error::Io(error) => Error::Connection(error.to_string()),
        tungstenite::Error::Url(error) => Error::InvalidInput(format!("channel URL: {error}")),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            Error::Connection("the connection closed".into())
        }
        other => Error::Connection(other.to_string()),
    }
}
