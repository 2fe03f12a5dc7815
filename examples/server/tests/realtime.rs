//! The realtime part of the contract, end to end: `/ws` with a plain WebSocket client
//! (tokio-tungstenite) and the test controls under `/_control/realtime`. Every test starts its
//! own server with its own in-memory database.

use std::sync::Once;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Client, StatusCode, header};
use roundtrip_server::{Config, RunningServer};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);

struct TestServer {
    server: RunningServer,
    http: Client,
    token: String,
}

impl TestServer {
    /// A server, and an access token for alice.
    async fn start() -> Self {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let server = roundtrip_server::start(Config::default())
            .await
            .expect("server starts");
        let http = Client::builder().build().expect("client builds");

        let response = http
            .post(format!("{}/oauth/token", server.base_url()))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=password&username=alice&password=wonderland&client_id=roundtrip-demo")
            .send()
            .await
            .expect("token request");
        let tokens = read_json(response).await;
        let token = tokens["access_token"].as_str().expect("a token").to_owned();

        Self {
            server,
            http,
            token,
        }
    }

    fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws{query}", self.server.addr())
    }

    /// Opens a socket with alice's token; `query` such as `?last_event_id=3`.
    async fn connect(&self, query: &str) -> Socket {
        self.connect_with(query, |_| {})
            .await
            .expect("upgrade accepted")
    }

    async fn connect_with(
        &self,
        query: &str,
        customise: impl FnOnce(&mut tokio_tungstenite::tungstenite::handshake::client::Request),
    ) -> Result<Socket, WsError> {
        let mut request = self.ws_url(query).into_client_request().unwrap();
        request.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        customise(&mut request);
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(socket, _)| socket)
    }

    async fn control(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.server.base_url()))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("control call")
    }

    async fn realtime_stats(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/_control/stats", self.server.base_url()))
            .send()
            .await
            .unwrap();
        read_json(response).await["realtime"].clone()
    }
}

async fn read_json(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).expect("JSON body")
}

/// The next text or binary message, skipping control frames, within `WAIT`.
async fn next_message(socket: &mut Socket) -> Message {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("no error");
        if message.is_text() || message.is_binary() || message.is_close() {
            return message;
        }
    }
}

async fn next_json(socket: &mut Socket) -> Value {
    let message = next_message(socket).await;
    serde_json::from_str(message.to_text().unwrap()).unwrap()
}

mod handshake {
    use super::*;

    #[tokio::test]
    async fn an_upgrade_without_a_token_is_refused_with_a_challenge() {
        let server = TestServer::start().await;

        let refused = server
            .connect_with("", |request| {
                request.headers_mut().remove(header::AUTHORIZATION);
            })
            .await;
        let expired = server
            .connect_with("", |request| {
                request
                    .headers_mut()
                    .insert(header::AUTHORIZATION, "Bearer not-a-token".parse().unwrap());
            })
            .await;

        let Err(WsError::Http(refused)) = refused else {
            panic!("expected an HTTP refusal")
        };
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            refused.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"roundtrip\""
        );
        let Err(WsError::Http(expired)) = expired else {
            panic!("expected an HTTP refusal")
        };
        let challenge = expired.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
        assert_eq!(server.realtime_stats().await["handshakes_rejected"], 2);
    }

    #[tokio::test]
    async fn a_plain_get_is_a_problem_not_an_upgrade() {
        let server = TestServer::start().await;

        let response = server
            .http
            .get(format!("{}/ws", server.server.base_url()))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap();

        assert!(response.status().is_client_error(), "{}", response.status());
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    #[tokio::test]
    async fn a_malformed_resume_point_is_refused() {
        let server = TestServer::start().await;

        let refused = server.connect_with("?last_event_id=soon", |_| {}).await;

        let Err(WsError::Http(refused)) = refused else {
            panic!("expected an HTTP refusal")
        };
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn the_subprotocol_is_selected_when_offered() {
        let server = TestServer::start().await;

        let mut socket = server
            .connect_with("", |request| {
                request.headers_mut().insert(
                    "sec-websocket-protocol",
                    "other.v2, roundtrip.v1".parse().unwrap(),
                );
            })
            .await
            .expect("upgrade accepted");
        socket.send(Message::text("ping?")).await.unwrap();

        assert_eq!(next_message(&mut socket).await, Message::text("ping?"));
    }
}

mod messages {
    use super::*;

    #[tokio::test]
    async fn text_and_binary_messages_are_echoed() {
        let server = TestServer::start().await;
        let mut socket = server.connect("").await;

        socket.send(Message::text("hello")).await.unwrap();
        socket
            .send(Message::binary(vec![1_u8, 2, 3]))
            .await
            .unwrap();

        assert_eq!(next_message(&mut socket).await, Message::text("hello"));
        assert_eq!(
            next_message(&mut socket).await,
            Message::binary(vec![1_u8, 2, 3])
        );
        assert_eq!(server.realtime_stats().await["messages_received"], 2);
    }

    #[tokio::test]
    async fn a_published_event_reaches_every_socket_with_the_next_id() {
        let server = TestServer::start().await;
        let mut first = server.connect("").await;
        let mut second = server.connect("").await;

        first
            .send(Message::text(r#"{"publish": {"text": "hi"}}"#))
            .await
            .unwrap();
        let published = server
            .control("/_control/realtime/publish", json!({ "data": [1, 2] }))
            .await;

        let expected_first = json!({ "id": 1, "data": { "text": "hi" } });
        let expected_second = json!({ "id": 2, "data": [1, 2] });
        assert_eq!(read_json(published).await, json!({ "id": 2 }));
        assert_eq!(next_json(&mut first).await, expected_first);
        assert_eq!(next_json(&mut second).await, expected_first);
        assert_eq!(next_json(&mut first).await, expected_second);
        assert_eq!(next_json(&mut second).await, expected_second);
        assert_eq!(server.realtime_stats().await["events_published"], 2);
    }

    #[tokio::test]
    async fn a_resuming_socket_gets_the_events_after_its_last_id_then_live_ones() {
        let server = TestServer::start().await;
        for n in 1..=3 {
            server
                .control("/_control/realtime/publish", json!({ "data": n }))
                .await;
        }

        let mut socket = server.connect("?last_event_id=1").await;
        server
            .control("/_control/realtime/publish", json!({ "data": 4 }))
            .await;

        for id in 2..=4 {
            assert_eq!(
                next_json(&mut socket).await,
                json!({ "id": id, "data": id })
            );
        }
        let stats = server.realtime_stats().await;
        assert_eq!(stats["resumed"], 1, "{stats}");
        assert_eq!(stats["events_replayed"], 2, "{stats}");
    }
}

mod controls {
    use super::*;

    #[tokio::test]
    async fn drop_resets_the_connection_without_a_close_frame() {
        let server = TestServer::start().await;
        let mut socket = server.connect("").await;

        let reached = server.control("/_control/realtime/drop", json!({})).await;
        let ended = tokio::time::timeout(WAIT, socket.next()).await.unwrap();

        assert_eq!(read_json(reached).await, json!({ "connections": 1 }));
        assert!(
            matches!(
                ended,
                Some(Err(WsError::Io(_) | WsError::Protocol(_))) | None
            ),
            "{ended:?}"
        );
    }

    #[tokio::test]
    async fn a_silenced_socket_answers_nothing_not_even_pings() {
        let server = TestServer::start().await;
        let mut socket = server.connect("").await;
        socket
            .send(Message::Ping(b"before".to_vec().into()))
            .await
            .unwrap();
        let before = tokio::time::timeout(WAIT, socket.next()).await.unwrap();
        assert!(matches!(before, Some(Ok(Message::Pong(_)))), "{before:?}");

        server
            .control("/_control/realtime/silence", json!({}))
            .await;
        socket
            .send(Message::Ping(b"after".to_vec().into()))
            .await
            .unwrap();
        server
            .control("/_control/realtime/publish", json!({ "data": 1 }))
            .await;
        let after = tokio::time::timeout(Duration::from_millis(300), socket.next()).await;

        assert!(after.is_err(), "the silenced socket sent {after:?}");
    }

    #[tokio::test]
    async fn close_sends_the_chosen_code_and_reason() {
        let server = TestServer::start().await;
        let mut socket = server.connect("").await;

        let invalid = server
            .control("/_control/realtime/close", json!({ "code": 1005 }))
            .await;
        server
            .control(
                "/_control/realtime/close",
                json!({ "code": 4001, "reason": "banned" }),
            )
            .await;
        let closed = next_message(&mut socket).await;

        assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let Message::Close(Some(frame)) = closed else {
            panic!("expected a close frame, got {closed:?}")
        };
        assert_eq!(frame.code, CloseCode::from(4001));
        assert_eq!(frame.reason.as_str(), "banned");
    }

    #[tokio::test]
    async fn reset_drops_sockets_and_starts_event_ids_again() {
        let server = TestServer::start().await;
        server
            .control("/_control/realtime/publish", json!({ "data": "old" }))
            .await;
        let mut socket = server.connect("").await;

        server.control("/_control/reset", json!({})).await;
        let ended = tokio::time::timeout(WAIT, socket.next()).await.unwrap();
        let published = server
            .control("/_control/realtime/publish", json!({ "data": "new" }))
            .await;

        assert!(!matches!(ended, Some(Ok(Message::Text(_)))), "{ended:?}");
        assert_eq!(read_json(published).await, json!({ "id": 1 }));
        let stats = server.realtime_stats().await;
        assert_eq!(stats["open_connections"], 0, "{stats}");
    }

    #[tokio::test]
    async fn shutdown_closes_sockets_as_going_away() {
        let server = TestServer::start().await;
        let mut socket = server.connect("").await;

        let stopping = tokio::spawn(server.server.shutdown());
        let closed = next_message(&mut socket).await;
        drop(socket);
        stopping.await.unwrap();

        let Message::Close(Some(frame)) = closed else {
            panic!("expected a close frame, got {closed:?}")
        };
        assert_eq!(frame.code, CloseCode::Away);
    }
}
