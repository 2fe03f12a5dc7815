//! Realtime channels against the reference server's `/ws`: reconnects, dead connections,
//! tokens, connectivity, resume and backoff. Intervals are milliseconds so the suite stays
//! fast; every wait is bounded.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use roundtrip::auth::{Credentials, MemoryStore, OAuthConfig, Secret, SessionEvent, TokenStore};
use roundtrip::realtime::{
    Channel, ChannelBuilder, ChannelEvent, ChannelState, DisconnectReason, Message, Overflow,
};
use roundtrip::{Client, Error};
use serde_json::{Value, json};

use crate::support::{Harness, raw_http};

const CLIENT_ID: &str = "roundtrip-demo";
const WAIT: Duration = Duration::from_secs(5);

/// A harness whose client holds a signed-in OAuth session (tokens in `store`).
async fn signed_in(store: Arc<MemoryStore>) -> Harness {
    let harness = Harness::start().await;
    let url = harness.server.base_url();
    let client = Client::builder(&url)
        .oauth(OAuthConfig::discover(CLIENT_ID, &url).unwrap())
        .token_store(store)
        .build()
        .unwrap();
    client
        .session()
        .unwrap()
        .sign_in_with_password("alice", "wonderland")
        .await
        .unwrap();
    Harness { client, ..harness }
}

/// Fast settings for tests: pings that never get in the way unless a test wants them, quick
/// backoff.
fn channel(client: &Client) -> ChannelBuilder {
    client
        .channel("/ws")
        .ping_interval(Duration::from_secs(10))
        .pong_timeout(Duration::from_secs(2))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .stable_after(Duration::from_millis(100))
}

/// A channel's event stream with bounded waits that report what they saw.
struct Events {
    stream: Pin<Box<dyn Stream<Item = ChannelEvent> + Send>>,
    seen: Vec<String>,
}

impl Events {
    fn of(channel: &Channel) -> Events {
        Events {
            stream: Box::pin(channel.events()),
            seen: Vec::new(),
        }
    }

    /// The next event that matches `wanted`, within `WAIT`.
    async fn until<T>(&mut self, mut wanted: impl FnMut(&ChannelEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await;
            let event = match next {
                Ok(Some(event)) => event,
                Ok(None) => panic!("the event stream ended; saw {:#?}", self.seen),
                Err(_) => panic!("no matching event in time; saw {:#?}", self.seen),
            };
            self.seen.push(format!("{event:?}"));
            if let Some(found) = wanted(&event) {
                return found;
            }
        }
    }

    async fn connected(&mut self) {
        self.until(|event| match event {
            ChannelEvent::State(ChannelState::Connected { .. }) => Some(()),
            _ => None,
        })
        .await;
    }

    async fn reconnecting(&mut self) -> (u32, Duration, Error) {
        self.until(|event| match event {
            ChannelEvent::State(ChannelState::Reconnecting {
                attempt,
                delay,
                cause,
            }) => Some((*attempt, *delay, cause.clone())),
            _ => None,
        })
        .await
    }

    async fn disconnected(&mut self) -> DisconnectReason {
        self.until(|event| match event {
            ChannelEvent::State(ChannelState::Disconnected { reason }) => Some(reason.clone()),
            _ => None,
        })
        .await
    }

    async fn text(&mut self) -> String {
        self.until(|event| match event {
            ChannelEvent::Message(Message::Text(text)) => Some(text.clone()),
            _ => None,
        })
        .await
    }

    async fn event(&mut self) -> (u64, Value) {
        self.until(|event| match event {
            ChannelEvent::Event { id, data } => Some((*id, serde_json::from_str(data).unwrap())),
            _ => None,
        })
        .await
    }
}

async fn realtime_stats(harness: &Harness) -> Value {
    harness.stats().await["realtime"].clone()
}

async fn publish(harness: &Harness, data: Value) -> u64 {
    let answer: Value = harness
        .control
        .post("/_control/realtime/publish")
        .json(&json!({ "data": data }))
        .send()
        .await
        .unwrap()
        .json()
        .unwrap();
    answer["id"].as_u64().unwrap()
}

/// A form POST from outside the SDK, as another party would make it.
async fn post_form(url: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    raw_http(true)
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn drop_connections(harness: &Harness) {
    harness.control("/_control/realtime/drop", json!({})).await;
}

#[tokio::test]
async fn test_text_and_binary_messages_echo_over_the_negotiated_subprotocol() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    let channel = channel(&harness.client)
        .subprotocol("roundtrip.v1")
        .open()
        .unwrap();
    let mut events = Events::of(&channel);

    let protocol = events
        .until(|event| match event {
            ChannelEvent::State(ChannelState::Connected { protocol }) => Some(protocol.clone()),
            _ => None,
        })
        .await;
    channel.send_text("hello").unwrap();
    channel.send_binary(vec![0_u8, 159, 146, 150]).unwrap();

    assert_eq!(protocol.as_deref(), Some("roundtrip.v1"));
    assert_eq!(events.text().await, "hello");
    let binary = events
        .until(|event| match event {
            ChannelEvent::Message(Message::Binary(data)) => Some(data.clone()),
            _ => None,
        })
        .await;
    assert_eq!(&binary[..], [0, 159, 146, 150]);
    assert!(channel.state().is_connected());
}

#[tokio::test]
async fn test_an_abrupt_drop_reconnects_and_flushes_the_queue_in_order() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    let channel = channel(&harness.client).open().unwrap();
    let mut events = Events::of(&channel);
    events.connected().await;
    // The next upgrade is held back, so the messages below are sent while disconnected.
    harness
        .fault(json!({ "path": "/ws", "count": 1, "kind": "delay", "delay_ms": 500 }))
        .await;

    drop_connections(&harness).await;
    let (_, _, cause) = events.reconnecting().await;
    for n in 1..=5 {
        channel.send_text(format!("queued {n}")).unwrap();
    }
    let queued_while_down = channel.queued_messages();
    events.connected().await;
    let mut echoed = Vec::new();
    for _ in 1..=5 {
        echoed.push(events.text().await);
    }

    assert!(matches!(cause, Error::Connection(_)), "{cause:?}");
    assert_eq!(queued_while_down, 5);
    assert_eq!(
        echoed,
        (1..=5).map(|n| format!("queued {n}")).collect::<Vec<_>>()
    );
    assert_eq!(channel.queued_messages(), 0);
    assert_eq!(realtime_stats(&harness).await["connections_accepted"], 2);
}

#[tokio::test]
async fn test_a_silent_connection_is_replaced_within_ping_interval_plus_pong_timeout() {
    let ping = Duration::from_millis(150);
    let pong = Duration::from_millis(150);
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    let channel = channel(&harness.client)
        .ping_interval(ping)
        .pong_timeout(pong)
        .open()
        .unwrap();
    let mut events = Events::of(&channel);
    events.connected().await;

    // A healthy connection answers every ping and stays.
    tokio::time::sleep(ping * 5).await;
    assert!(channel.state().is_connected());
    assert_eq!(realtime_stats(&harness).await["connections_accepted"], 1);

    harness
        .control("/_control/realtime/silence", json!({}))
        .await;
    let silenced = Instant::now();
    let (_, _, cause) = events.reconnecting().await;
    let detected = silenced.elapsed();
    events.connected().await;

    assert!(
        detected <= ping + pong + Duration::from_millis(250),
        "detected after {detected:?}"
    );
    assert!(cause.to_string().contains("pong"), "{cause}");
    assert_eq!(realtime_stats(&harness).await["connections_accepted"], 2);
}

#[tokio::test]
async fn test_an_expired_token_reconnects_with_a_fresh_one() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    let mut session_events = Box::pin(harness.client.session().unwrap().events());
    let channel = channel(&harness.client).open().unwrap();
    let mut events = Events::of(&channel);
    events.connected().await;

    harness
        .control("/_control/oauth/expire-access-tokens", json!({}))
        .await;
    drop_connections(&harness).await;
    events.reconnecting().await;
    events.connected().await;

    let stats = harness.stats().await;
    assert_eq!(stats["realtime"]["handshakes_rejected"], 1, "{stats}");
    assert_eq!(stats["realtime"]["connections_accepted"], 2, "{stats}");
    assert_eq!(stats["oauth"]["refresh_grants"], 1, "{stats}");
    let refreshed = tokio::time::timeout(WAIT, session_events.next())
        .await
        .unwrap();
    assert_eq!(refreshed, Some(SessionEvent::Refreshed));
    channel.send_text("still me").unwrap();
    assert_eq!(events.text().await, "still me");
}

#[tokio::test]
async fn test_a_session_the_server_ended_stops_reconnecting() {
    let store = Arc::new(MemoryStore::default());
    let harness = signed_in(store.clone()).await;
    let channel = channel(&harness.client).open().unwrap();
    let mut events = Events::of(&channel);
    events.connected().await;
    // Revoking the refresh token revokes the whole grant, the access token with it.
    let refresh_token = store.load().unwrap().unwrap().refresh_token.unwrap();
    let revocation = post_form(
        &format!("{}/oauth/revoke", harness.server.base_url()),
        &[("token", refresh_token.expose()), ("client_id", CLIENT_ID)],
    )
    .await;
    assert_eq!(revocation.status(), 200);

    drop_connections(&harness).await;
    let reason = events.disconnected().await;
    let handshakes = harness.hits("GET /ws").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert!(
        matches!(reason, DisconnectReason::Failed(Error::SignInRequired)),
        "{reason:?}"
    );
    assert_eq!(harness.hits("GET /ws").await, handshakes);
    assert!(matches!(channel.send_text("x"), Err(Error::ChannelClosed)));
}

#[tokio::test]
async fn test_no_attempts_while_offline_and_at_once_when_back() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    let channel = channel(&harness.client)
        .reconnect_backoff(Duration::from_secs(30), Duration::from_secs(30))
        .open()
        .unwrap();
    let mut events = Events::of(&channel);
    events.connected().await;

    harness.client.set_online(false);
    events
        .until(|event| {
            matches!(event, ChannelEvent::State(ChannelState::WaitingForNetwork)).then_some(())
        })
        .await;
    let handshakes = harness.hits("GET /ws").await;
    drop_connections(&harness).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let while_offline = harness.hits("GET /ws").await - handshakes;
    channel.send_text("sent while offline").unwrap();

    let back = Instant::now();
    harness.client.set_online(true);
    events.connected().await;
    let reconnected_in = back.elapsed();

    assert_eq!(while_offline, 0);
    assert_eq!(realtime_stats(&harness).await["open_connections"], 1);
    // A 30 s backoff would apply if the network's return were treated as another failure.
    assert!(
        reconnected_in < Duration::from_secs(2),
        "{reconnected_in:?}"
    );
    assert_eq!(events.text().await, "sent while offline");
}

#[tokio::test]
async fn test_a_channel_opened_offline_waits_for_the_network() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    harness.client.set_online(false);

    let channel = channel(&harness.client).open().unwrap();
    let mut events = Events::of(&channel);
    events
        .until(|event| {
            matches!(event, ChannelEvent::State(ChannelState::WaitingForNetwork)).then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(harness.hits("GET /ws").await, 0);
    harness.client.set_online(true);
    events.connected().await;
}

#[tokio::test]
async fn test_no_event_is_lost_across_a_reconnect_with_resume() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    let channel = channel(&harness.client).resume(true).open().unwrap();
    let mut events = Events::of(&channel);
    events.connected().await;
    publish(&harness, json!({ "n": 1 })).await;
    publish(&harness, json!({ "n": 2 })).await;
    assert_eq!(events.event().await, (1, json!({ "n": 1 })));
    assert_eq!(events.event().await, (2, json!({ "n": 2 })));
    harness
        .fault(json!({ "path": "/ws", "count": 1, "kind": "delay", "delay_ms": 300 }))
        .await;

    drop_connections(&harness).await;
    events.reconnecting().await;
    publish(&harness, json!({ "n": 3 })).await;
    publish(&harness, json!({ "n": 4 })).await;
    events.connected().await;
    channel.send_text(r#"{"publish": {"n": 5}}"#).unwrap();
    let after: Vec<_> = [
        events.event().await,
        events.event().await,
        events.event().await,
    ]
    .into_iter()
    .collect();

    assert_eq!(
        after,
        [
            (3, json!({ "n": 3 })),
            (4, json!({ "n": 4 })),
            (5, json!({ "n": 5 }))
        ]
    );
    assert_eq!(channel.last_event_id(), Some(5));
    let stats = realtime_stats(&harness).await;
    assert_eq!(stats["resumed"], 1, "{stats}");
    assert_eq!(stats["events_replayed"], 2, "{stats}");
}

#[tokio::test]
async fn test_resume_from_an_id_kept_by_the_app() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    for n in 1..=3 {
        publish(&harness, json!(n)).await;
    }

    let channel = channel(&harness.client).resume_from(1).open().unwrap();
    let mut events = Events::of(&channel);

    assert_eq!(events.event().await, (2, json!(2)));
    assert_eq!(events.event().await, (3, json!(3)));
}

#[tokio::test]
async fn test_refused_handshakes_back_off_without_a_storm() {
    let initial = Duration::from_millis(20);
    let max = Duration::from_millis(200);
    let window = Duration::from_millis(1500);
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    harness
        .fault(json!({ "path": "/ws", "count": 10000, "kind": "status", "status": 503 }))
        .await;

    let channel = channel(&harness.client)
        .reconnect_backoff(initial, max)
        .open()
        .unwrap();
    let mut events = Events::of(&channel);
    let started = Instant::now();
    let mut waits = Vec::new();
    while started.elapsed() < window {
        waits.push(events.reconnecting().await);
    }
    let attempts = harness.hits("GET /ws").await;
    channel.close().await;

    for (attempt, delay, cause) in &waits {
        let ceiling = initial.saturating_mul(1 << (attempt - 1).min(16)).min(max);
        assert!(*delay <= ceiling, "retry {attempt} waited {delay:?}");
        assert_eq!(cause.status(), Some(503));
    }
    assert!(waits.windows(2).all(|pair| pair[1].0 == pair[0].0 + 1));
    // Immediate retries would make hundreds of attempts in the window; the backoff allows
    // about 17 on average (mean waits 10, 20, 40, 80, then 100 ms).
    assert!(
        (3..=45).contains(&attempts),
        "{attempts} attempts in {window:?}"
    );
}

#[tokio::test]
async fn test_close_codes_marked_final_stop_and_others_reconnect() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    let channel = channel(&harness.client)
        .final_close_codes([4001])
        .open()
        .unwrap();
    let mut events = Events::of(&channel);
    events.connected().await;

    harness
        .control(
            "/_control/realtime/close",
            json!({ "code": 4000, "reason": "restart" }),
        )
        .await;
    let (_, _, cause) = events.reconnecting().await;
    events.connected().await;
    harness
        .control(
            "/_control/realtime/close",
            json!({ "code": 4001, "reason": "banned" }),
        )
        .await;
    let reason = events.disconnected().await;

    assert!(cause.to_string().contains("4000"), "{cause}");
    assert!(
        matches!(&reason, DisconnectReason::ClosedByServer { code: 4001, reason } if reason == "banned"),
        "{reason:?}"
    );
    assert!(matches!(channel.send_text("x"), Err(Error::ChannelClosed)));
}

#[tokio::test]
async fn test_close_sends_what_is_queued_and_stops() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    let channel = channel(&harness.client).open().unwrap();
    let mut events = Events::of(&channel);
    events.connected().await;

    channel.send_text("last words").unwrap();
    channel.close().await;

    assert!(matches!(
        channel.state(),
        ChannelState::Disconnected {
            reason: DisconnectReason::Closed
        }
    ));
    assert_eq!(events.text().await, "last words");
    assert!(matches!(
        events.disconnected().await,
        DisconnectReason::Closed
    ));
    assert!(events.stream.next().await.is_none());
    let stats = harness
        .wait_for_stats(|stats| stats["realtime"]["open_connections"] == 0)
        .await;
    assert_eq!(stats["realtime"]["messages_received"], 1);
}

#[tokio::test]
async fn test_a_static_bearer_token_authenticates_and_none_is_refused() {
    let harness = Harness::start().await;
    let token = post_form(
        &format!("{}/oauth/token", harness.server.base_url()),
        &[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "builder"),
            ("client_id", CLIENT_ID),
        ],
    )
    .await;
    let token: Value = serde_json::from_slice(&token.bytes().await.unwrap()).unwrap();
    let bearer = Client::builder(harness.server.base_url())
        .credentials(Credentials::BearerToken(Secret::new(
            token["access_token"].as_str().unwrap(),
        )))
        .build()
        .unwrap();

    let authorized = channel(&bearer).open().unwrap();
    let anonymous = channel(&harness.client).open().unwrap();

    Events::of(&authorized).connected().await;
    let refused = Events::of(&anonymous).disconnected().await;
    assert!(
        matches!(&refused, DisconnectReason::Failed(error) if error.status() == Some(401)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn test_sends_beyond_the_queue_follow_the_overflow_rule() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    harness.client.set_online(false);
    let failing = channel(&harness.client)
        .queue(2, Overflow::Fail)
        .open()
        .unwrap();
    let dropping = channel(&harness.client)
        .queue(2, Overflow::DropOldest)
        .open()
        .unwrap();
    let limited = channel(&harness.client).max_message_size(4).open().unwrap();

    for n in 1..=3 {
        let _ = failing.send_text(format!("{n}"));
        dropping.send_text(format!("{n}")).unwrap();
    }
    let full = failing.send_text("4");
    let too_large = limited.send_text("12345");
    harness.client.set_online(true);
    let mut events = Events::of(&dropping);
    let echoed = [events.text().await, events.text().await];

    assert!(
        matches!(full, Err(Error::QueueFull { capacity: 2 })),
        "{full:?}"
    );
    assert!(
        matches!(too_large, Err(Error::InvalidInput(_))),
        "{too_large:?}"
    );
    assert_eq!(echoed, ["2", "3"]);
}

#[tokio::test]
async fn test_plain_websockets_off_loopback_are_refused_at_open() {
    let client = Client::builder("https://api.example.com").build().unwrap();

    let error = client
        .channel("ws://api.example.com/ws")
        .open()
        .unwrap_err();

    assert!(
        matches!(error, Error::InsecureTransport { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn test_a_burst_of_messages_arrives_complete_and_in_order() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    let channel = channel(&harness.client)
        .queue(3000, Overflow::Fail)
        .event_buffer(1)
        .open()
        .unwrap();
    let mut events = Events::of(&channel);
    events.connected().await;

    // Not reading holds the channel back, so the echoes pile up in the socket and arrive
    // as one burst far larger than what the driver handles per wake-up.
    for n in 0..3000 {
        channel.send_text(n.to_string()).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut echoed = Vec::with_capacity(3000);
    for _ in 0..3000 {
        echoed.push(events.text().await);
    }

    assert!(
        echoed
            .iter()
            .enumerate()
            .all(|(n, text)| *text == n.to_string()),
        "echoes out of order or missing"
    );
}
