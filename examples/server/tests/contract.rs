//! The backend contract, checked end to end: a real server on loopback, a real
//! HTTP client (reqwest), one module per part of the contract. Every test
//! starts its own server with its own in-memory database.

use std::io;
use std::net::SocketAddr;
use std::sync::Once;
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use roundtrip_server::{Config, RunningServer};
use serde_json::{Value, json};

/// A running server with a client pointed at it.
struct TestServer {
    server: RunningServer,
    client: Client,
}

impl TestServer {
    async fn start() -> Self {
        Self::start_with(Config::default()).await
    }

    async fn start_with(config: Config) -> Self {
        let server = roundtrip_server::start(config)
            .await
            .expect("server starts");

        Self {
            server,
            client: client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request succeeds")
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");

        read_json(response).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json_body(body)
            .send()
            .await
            .expect("request succeeds")
    }

    async fn post_with_key(&self, path: &str, key: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .header("Idempotency-Key", key)
            .json_body(body)
            .send()
            .await
            .expect("request succeeds")
    }

    async fn stats(&self) -> Value {
        self.get_json("/_control/stats").await
    }

    async fn add_fault(&self, rule: Value) {
        let response = self.post_json("/_control/faults", &rule).await;

        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "fault rule {rule} accepted"
        );
    }

    async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Sends a JSON body; the workspace's reqwest is built without its `json` feature.
trait JsonBody {
    fn json_body(self, value: &Value) -> Self;
}

impl JsonBody for RequestBuilder {
    fn json_body(self, value: &Value) -> Self {
        self.header(header::CONTENT_TYPE, "application/json")
            .body(value.to_string())
    }
}

/// Reads a response body as JSON.
async fn read_json(response: Response) -> Value {
    let body = response.bytes().await.expect("body arrives");

    serde_json::from_slice(&body).expect("body is JSON")
}

/// A client that decompresses and follows redirects, like an app's would.
fn client() -> Client {
    install_crypto_provider();

    Client::builder().build().expect("client builds")
}

/// A client that shows responses exactly as sent: no decompression, no redirects.
fn raw_client() -> Client {
    install_crypto_provider();

    Client::builder()
        .no_gzip()
        .no_brotli()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

fn install_crypto_provider() {
    static INSTALL: Once = Once::new();

    INSTALL.call_once(|| {
        // reqwest is built without a default provider; plain HTTP needs none,
        // but building a client still looks for one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn content_type(response: &Response) -> &str {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Reads a problem body, checking its media type and the status it repeats.
async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(content_type(&response), "application/problem+json");

    let body: Value = read_json(response).await;
    assert_eq!(body["status"], status.as_u16());
    body
}

/// Whether an error was caused by the peer resetting the connection.
fn is_connection_reset(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);

    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::ConnectionReset
        {
            return true;
        }
        source = err.source();
    }

    false
}

/// Polls the stats until `check` holds, for at most five seconds.
async fn wait_for_stats(server: &TestServer, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);

    loop {
        let stats = server.stats().await;
        if check(&stats) || Instant::now() > deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

mod health {
    use super::*;

    #[tokio::test]
    async fn test_health_reports_ok() {
        let server = TestServer::start().await;

        let response = server.get("/health").await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(content_type(&response), "application/json");
        assert_eq!(read_json(response).await, json!({ "status": "ok" }));
    }

    #[tokio::test]
    async fn test_base_url_is_loopback_with_the_bound_port() {
        let server = TestServer::start().await;

        let port = server.addr().port();

        assert_ne!(port, 0);
        assert_eq!(server.server.base_url(), format!("http://127.0.0.1:{port}"));
    }
}

mod todos {
    use super::*;

    #[tokio::test]
    async fn test_crud_round_trip() {
        let server = TestServer::start().await;

        let created = server
            .post_json("/todos", &json!({ "title": "buy milk" }))
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        assert_eq!(created.headers()[header::LOCATION], "/todos/1");
        let todo: Value = read_json(created).await;
        assert_eq!(todo, json!({ "id": 1, "title": "buy milk", "done": false }));

        let second = server
            .post_json("/todos", &json!({ "title": "walk", "done": true }))
            .await;
        assert_eq!(second.status(), StatusCode::CREATED);
        assert_eq!(server.get_json("/todos/1").await, todo);
        assert_eq!(
            server.get_json("/todos").await,
            json!([
                { "id": 1, "title": "buy milk", "done": false },
                { "id": 2, "title": "walk", "done": true },
            ])
        );

        let replaced = server
            .client
            .put(server.url("/todos/1"))
            .json_body(&json!({ "title": "buy oat milk", "done": false }))
            .send()
            .await
            .unwrap();
        assert_eq!(replaced.status(), StatusCode::OK);
        assert_eq!(
            read_json(replaced).await,
            json!({ "id": 1, "title": "buy oat milk", "done": false })
        );

        let patched = server
            .client
            .patch(server.url("/todos/1"))
            .json_body(&json!({ "done": true }))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), StatusCode::OK);
        assert_eq!(
            read_json(patched).await,
            json!({ "id": 1, "title": "buy oat milk", "done": true })
        );

        let deleted = server
            .client
            .delete(server.url("/todos/1"))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        assert!(deleted.bytes().await.unwrap().is_empty());

        let gone = server.get("/todos/1").await;
        let body = problem(gone, StatusCode::NOT_FOUND).await;
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Not Found");
        assert_eq!(body["instance"], "/todos/1");
        assert_eq!(server.get_json("/todos").await.as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn test_missing_or_empty_title_is_a_validation_problem() {
        let server = TestServer::start().await;

        for (body, message) in [
            (json!({ "done": true }), "is required"),
            (json!({ "title": "" }), "must not be empty"),
            (json!({ "title": "   " }), "must not be empty"),
        ] {
            let response = server.post_json("/todos", &body).await;

            let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(problem["type"], "/problems/validation");
            assert_eq!(problem["instance"], "/todos");
            assert_eq!(
                problem["errors"],
                json!([{ "field": "title", "message": message }])
            );
        }

        assert_eq!(server.stats().await["todos"], 0);
    }

    #[tokio::test]
    async fn test_put_requires_title_and_done() {
        let server = TestServer::start().await;
        server.post_json("/todos", &json!({ "title": "a" })).await;

        let response = server
            .client
            .put(server.url("/todos/1"))
            .json_body(&json!({}))
            .send()
            .await
            .unwrap();

        let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        let fields: Vec<_> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].clone())
            .collect();
        assert_eq!(fields, [json!("title"), json!("done")]);
    }

    #[tokio::test]
    async fn test_patch_rejects_an_empty_title() {
        let server = TestServer::start().await;
        server.post_json("/todos", &json!({ "title": "a" })).await;

        let response = server
            .client
            .patch(server.url("/todos/1"))
            .json_body(&json!({ "title": "" }))
            .send()
            .await
            .unwrap();

        problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(server.get_json("/todos/1").await["title"], "a");
    }

    #[tokio::test]
    async fn test_malformed_bodies_are_400() {
        let server = TestServer::start().await;

        for body in [
            "not json",
            "[1, 2]",
            r#"{"title": 42}"#,
            r#"{"title": "a", "done": "yes"}"#,
        ] {
            let response = server
                .client
                .post(server.url("/todos"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .unwrap();

            let problem = problem(response, StatusCode::BAD_REQUEST).await;
            assert_eq!(problem["type"], "/problems/malformed-body", "body {body}");
        }

        assert_eq!(server.stats().await["todos"], 0);
    }

    #[tokio::test]
    async fn test_unknown_todos_are_404_for_every_method() {
        let server = TestServer::start().await;
        let url = server.url("/todos/7");
        let todo = json!({ "title": "x", "done": false });

        let responses = [
            server.client.get(&url).send().await.unwrap(),
            server
                .client
                .put(&url)
                .json_body(&todo)
                .send()
                .await
                .unwrap(),
            server
                .client
                .patch(&url)
                .json_body(&todo)
                .send()
                .await
                .unwrap(),
            server.client.delete(&url).send().await.unwrap(),
            server
                .client
                .get(server.url("/todos/abc"))
                .send()
                .await
                .unwrap(),
        ];

        for response in responses {
            problem(response, StatusCode::NOT_FOUND).await;
        }
    }

    #[tokio::test]
    async fn test_unknown_routes_and_methods_are_problems() {
        let server = TestServer::start().await;

        let missing = server.get("/nowhere").await;
        let wrong_method = server
            .client
            .put(server.url("/todos"))
            .send()
            .await
            .unwrap();

        let body = problem(missing, StatusCode::NOT_FOUND).await;
        assert_eq!(body["instance"], "/nowhere");
        let allow = wrong_method.headers()[header::ALLOW]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(allow.contains("POST"), "allow: {allow}");
        let body = problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
        assert_eq!(body["title"], "Method Not Allowed");
    }
}

mod idempotency {
    use super::*;

    #[tokio::test]
    async fn test_same_key_twice_writes_once_and_replays() {
        let server = TestServer::start().await;
        let body = json!({ "title": "pay rent" });

        let first = server.post_with_key("/todos", "rent-2024-01", &body).await;
        let second = server.post_with_key("/todos", "rent-2024-01", &body).await;

        assert_eq!(first.status(), StatusCode::CREATED);
        assert!(first.headers().get("idempotency-replayed").is_none());
        assert_eq!(second.status(), StatusCode::CREATED);
        assert_eq!(second.headers()["idempotency-replayed"], "true");
        assert_eq!(second.headers()[header::LOCATION], "/todos/1");
        assert_eq!(content_type(&second), "application/json");
        assert_eq!(read_json(first).await, read_json(second).await);
        assert_eq!(server.stats().await["todos"], 1);
    }

    #[tokio::test]
    async fn test_key_reused_for_another_request_is_422() {
        let server = TestServer::start().await;
        server
            .post_with_key("/todos", "k-1", &json!({ "title": "a" }))
            .await;

        let other_body = server
            .post_with_key("/todos", "k-1", &json!({ "title": "b" }))
            .await;
        let other_path = server
            .client
            .put(server.url("/todos/1"))
            .header("Idempotency-Key", "k-1")
            .json_body(&json!({ "title": "a" }))
            .send()
            .await
            .unwrap();

        for response in [other_body, other_path] {
            let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(problem["type"], "/problems/idempotency-key-reused");
        }
        assert_eq!(
            server.get_json("/todos").await,
            json!([{ "id": 1, "title": "a", "done": false }])
        );
    }

    #[tokio::test]
    async fn test_concurrent_requests_with_one_key_write_once() {
        let server = TestServer::start().await;
        let body = json!({ "title": "only once" });

        let requests = (0..8).map(|_| server.post_with_key("/todos", "race", &body));
        let responses = futures::future::join_all(requests).await;

        let mut replayed = 0;
        for response in responses {
            assert_eq!(response.status(), StatusCode::CREATED);
            if response.headers().contains_key("idempotency-replayed") {
                replayed += 1;
            }
            assert_eq!(read_json(response).await["id"], 1);
        }
        assert_eq!(replayed, 7);
        assert_eq!(server.stats().await["todos"], 1);
    }

    #[tokio::test]
    async fn test_problems_are_stored_and_replayed_too() {
        let server = TestServer::start().await;
        let body = json!({ "title": "" });

        let first = server.post_with_key("/todos", "bad", &body).await;
        let second = server.post_with_key("/todos", "bad", &body).await;

        assert!(first.headers().get("idempotency-replayed").is_none());
        assert_eq!(second.headers()["idempotency-replayed"], "true");
        let first = problem(first, StatusCode::UNPROCESSABLE_ENTITY).await;
        let second = problem(second, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(first, second);
    }

    #[tokio::test]
    async fn test_delete_with_a_key_is_replayed_as_204() {
        let server = TestServer::start().await;
        server.post_json("/todos", &json!({ "title": "a" })).await;
        let delete = || {
            server
                .client
                .delete(server.url("/todos/1"))
                .header("Idempotency-Key", "d")
                .send()
        };

        let first = delete().await.unwrap();
        let second = delete().await.unwrap();

        assert_eq!(first.status(), StatusCode::NO_CONTENT);
        assert_eq!(second.status(), StatusCode::NO_CONTENT);
        assert_eq!(second.headers()["idempotency-replayed"], "true");
    }

    #[tokio::test]
    async fn test_invalid_keys_are_rejected() {
        let server = TestServer::start().await;
        let long = "k".repeat(256);
        let longest = "k".repeat(255);

        for key in ["", long.as_str(), "has space"] {
            let response = server
                .post_with_key("/todos", key, &json!({ "title": "a" }))
                .await;

            let problem = problem(response, StatusCode::BAD_REQUEST).await;
            assert_eq!(
                problem["type"], "/problems/invalid-idempotency-key",
                "key {key:?}"
            );
        }
        let accepted = server
            .post_with_key("/todos", &longest, &json!({ "title": "a" }))
            .await;

        assert_eq!(accepted.status(), StatusCode::CREATED);
        assert_eq!(server.stats().await["todos"], 1);
    }
}

mod faults {
    use super::*;

    #[tokio::test]
    async fn test_status_fault_is_consumed_exactly_count_times() {
        let server = TestServer::start().await;
        server
            .add_fault(json!({
                "path": "/todos", "count": 2, "kind": "status", "status": 503, "retry_after": 1,
            }))
            .await;

        let first = server.get("/todos").await;
        let second = server.get("/todos").await;
        let third = server.get("/todos").await;

        for response in [first, second] {
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
            let problem = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
            assert_eq!(problem["type"], "/problems/injected-fault");
            assert_eq!(problem["instance"], "/todos");
        }
        assert_eq!(third.status(), StatusCode::OK);
        let stats = server.stats().await;
        assert_eq!(stats["faults_injected"], 2);
        assert_eq!(stats["by_route"]["GET /todos"], 3);
    }

    #[tokio::test]
    async fn test_status_fault_skips_the_handler() {
        let server = TestServer::start().await;
        server
            .add_fault(json!({ "path": "/todos", "method": "POST", "count": 1, "kind": "status" }))
            .await;

        let listed = server.get("/todos").await;
        let faulted = server
            .post_with_key("/todos", "k", &json!({ "title": "a" }))
            .await;
        let retried = server
            .post_with_key("/todos", "k", &json!({ "title": "a" }))
            .await;

        assert_eq!(
            listed.status(),
            StatusCode::OK,
            "GET is not caught by a POST rule"
        );
        assert_eq!(faulted.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(faulted.headers().get(header::RETRY_AFTER).is_none());
        assert_eq!(retried.status(), StatusCode::CREATED);
        assert!(retried.headers().get("idempotency-replayed").is_none());
        assert_eq!(server.stats().await["todos"], 1);
    }

    #[tokio::test]
    async fn test_reset_gives_a_connection_error_not_a_response() {
        let server = TestServer::start().await;
        server
            .add_fault(json!({ "path": "/todos", "count": 1, "kind": "reset" }))
            .await;

        let result = server
            .client
            .post(server.url("/todos"))
            .json_body(&json!({ "title": "a" }))
            .send()
            .await;

        let err = result.expect_err("a reset connection yields no response");
        assert!(
            is_connection_reset(&err),
            "expected a connection reset, got {err:?}"
        );
        assert_eq!(server.get("/todos").await.status(), StatusCode::OK);
        let stats = server.stats().await;
        assert_eq!(stats["todos"], 0, "the handler did not run");
        assert_eq!(stats["faults_injected"], 1);
    }

    #[tokio::test]
    async fn test_reset_sends_a_tcp_rst() {
        let server = TestServer::start().await;
        server
            .add_fault(json!({ "path": "/health", "count": 1, "kind": "reset" }))
            .await;
        let addr = server.addr();

        let read = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};

            let mut stream = std::net::TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")?;
            let mut buffer = [0; 512];
            stream.read(&mut buffer)
        })
        .await
        .unwrap();

        let err = read.expect_err("no bytes arrive, not even an end of file");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }

    #[tokio::test]
    async fn test_reset_after_applies_the_write_and_the_key_replays_it() {
        let server = TestServer::start().await;
        server
            .add_fault(
                json!({ "path": "/todos", "method": "POST", "count": 1, "kind": "reset_after" }),
            )
            .await;
        let body = json!({ "title": "lost response" });

        let lost = server
            .client
            .post(server.url("/todos"))
            .header("Idempotency-Key", "retry-me")
            .json_body(&body)
            .send()
            .await;
        let stats_after_loss = server.stats().await;
        let retried = server.post_with_key("/todos", "retry-me", &body).await;

        let err = lost.expect_err("the response was lost");
        assert!(
            is_connection_reset(&err),
            "expected a connection reset, got {err:?}"
        );
        assert_eq!(stats_after_loss["todos"], 1, "the write was committed");
        assert_eq!(retried.status(), StatusCode::CREATED);
        assert_eq!(retried.headers()["idempotency-replayed"], "true");
        assert_eq!(
            read_json(retried).await,
            json!({ "id": 1, "title": "lost response", "done": false })
        );
        assert_eq!(server.stats().await["todos"], 1);
    }

    #[tokio::test]
    async fn test_delay_fault_waits_then_handles() {
        let server = TestServer::start().await;
        server
            .add_fault(json!({ "path": "/health", "count": 1, "kind": "delay", "delay_ms": 500 }))
            .await;

        let started = Instant::now();
        let delayed = server.get("/health").await;
        let delayed_for = started.elapsed();
        let started = Instant::now();
        let prompt = server.get("/health").await;
        let prompt_for = started.elapsed();

        assert_eq!(delayed.status(), StatusCode::OK);
        assert!(
            delayed_for >= Duration::from_millis(500),
            "took {delayed_for:?}"
        );
        assert_eq!(prompt.status(), StatusCode::OK);
        assert!(
            prompt_for < Duration::from_millis(500),
            "took {prompt_for:?}"
        );
    }

    #[tokio::test]
    async fn test_rules_apply_in_order_and_can_be_cleared() {
        let server = TestServer::start().await;
        server
            .add_fault(json!({ "path": "/status", "count": 1, "kind": "status", "status": 500 }))
            .await;
        server
            .add_fault(json!({ "path": "/", "count": 5, "kind": "status", "status": 429 }))
            .await;

        let first = server.get("/status/200").await;
        let second = server.get("/status/200").await;
        let cleared = server
            .client
            .delete(server.url("/_control/faults"))
            .send()
            .await
            .unwrap();
        let third = server.get("/status/200").await;

        assert_eq!(first.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
        assert_eq!(third.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn test_control_routes_are_never_faulted() {
        let server = TestServer::start().await;
        server
            .add_fault(json!({ "path": "/", "count": 100, "kind": "reset" }))
            .await;

        let stats = server.stats().await;

        assert_eq!(stats["faults_injected"], 0);
        assert_eq!(stats["total"], 0);
    }

    #[tokio::test]
    async fn test_invalid_rules_are_refused() {
        let server = TestServer::start().await;

        let invalid = server
            .post_json(
                "/_control/faults",
                &json!({ "path": "/todos", "count": 1, "kind": "boom" }),
            )
            .await;
        let malformed = server
            .client
            .post(server.url("/_control/faults"))
            .body("{")
            .send()
            .await
            .unwrap();

        let problem_body = problem(invalid, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem_body["errors"][0]["field"], "kind");
        let problem_body = problem(malformed, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem_body["type"], "/problems/malformed-body");
    }
}

mod slow {
    use super::*;

    #[tokio::test]
    async fn test_slow_sends_headers_at_once_and_spreads_the_body() {
        let server = TestServer::start().await;

        let started = Instant::now();
        let response = server.get("/slow?ms=1200&chunks=3").await;
        let headers_after = started.elapsed();
        let body = response.text().await.unwrap();
        let body_after = started.elapsed();

        assert!(
            headers_after < Duration::from_millis(600),
            "headers took {headers_after:?}"
        );
        assert!(
            body_after >= Duration::from_millis(1200),
            "body took {body_after:?}"
        );
        assert_eq!(body.lines().count(), 3);
        let stats = server.stats().await;
        assert_eq!(
            stats["slow"],
            json!({ "started": 1, "completed": 1, "aborted": 0 })
        );
    }

    #[tokio::test]
    async fn test_slow_counts_an_abort_when_the_client_goes_away() {
        let server = TestServer::start().await;
        let client = client();

        let mut response = client
            .get(server.url("/slow?ms=3000&chunks=30"))
            .send()
            .await
            .unwrap();
        let first = response.chunk().await.unwrap();
        drop(response);
        drop(client);
        let stats = wait_for_stats(&server, |stats| stats["slow"]["aborted"] == 1).await;

        assert!(first.is_some_and(|chunk| !chunk.is_empty()));
        assert_eq!(
            stats["slow"],
            json!({ "started": 1, "completed": 0, "aborted": 1 })
        );
    }

    #[tokio::test]
    async fn test_slow_is_never_compressed() {
        let server = TestServer::start().await;

        let response = raw_client()
            .get(server.url("/slow?ms=50&chunks=2"))
            .header(header::ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .unwrap();

        assert!(response.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(response.text().await.unwrap().lines().count(), 2);
    }
}

mod control {
    use super::*;

    #[tokio::test]
    async fn test_stats_count_requests_by_route_without_query() {
        let server = TestServer::start().await;

        server.get("/todos").await;
        server.get("/todos?page=2").await;
        server.post_json("/todos", &json!({ "title": "a" })).await;
        server.get("/todos/1").await;
        server.get("/health").await;
        let stats = server.stats().await;

        assert_eq!(stats["total"], 5);
        assert_eq!(
            stats["by_route"],
            json!({ "GET /todos": 2, "POST /todos": 1, "GET /todos/1": 1, "GET /health": 1 })
        );
        assert_eq!(stats["todos"], 1);
        assert_eq!(stats["faults_injected"], 0);
        assert_eq!(
            stats["slow"],
            json!({ "started": 0, "completed": 0, "aborted": 0 })
        );
    }

    #[tokio::test]
    async fn test_reset_clears_data_keys_rules_and_counts() {
        let server = TestServer::start().await;
        server
            .post_with_key("/todos", "k", &json!({ "title": "a" }))
            .await;
        server
            .add_fault(json!({ "path": "/health", "count": 1, "kind": "status" }))
            .await;

        let reset = server
            .client
            .post(server.url("/_control/reset"))
            .send()
            .await
            .unwrap();
        let stats_after_reset = server.stats().await;
        let health = server.get("/health").await;
        let reused = server
            .post_with_key("/todos", "k", &json!({ "title": "b" }))
            .await;

        assert_eq!(reset.status(), StatusCode::NO_CONTENT);
        assert_eq!(stats_after_reset["total"], 0);
        assert_eq!(stats_after_reset["by_route"], json!({}));
        assert_eq!(stats_after_reset["todos"], 0);
        assert_eq!(health.status(), StatusCode::OK, "the rule is gone");
        assert_eq!(reused.status(), StatusCode::CREATED, "the key is forgotten");
        assert!(reused.headers().get("idempotency-replayed").is_none());
        assert_eq!(read_json(reused).await["id"], 1, "ids start again");
    }
}

mod fixtures {
    use super::*;

    #[tokio::test]
    async fn test_echo_reflects_the_request() {
        let server = TestServer::start().await;
        let mut headers = HeaderMap::new();
        headers.append("X-Trace", HeaderValue::from_static("one"));
        headers.append("X-Trace", HeaderValue::from_static("two"));

        let response = server
            .client
            .post(server.url("/echo?a=1&b=2"))
            .headers(headers)
            .body("héllo")
            .send()
            .await
            .unwrap();
        let echoed: Value = read_json(response).await;
        let bare: Value = server.get_json("/echo").await;

        assert_eq!(echoed["method"], "POST");
        assert_eq!(echoed["path"], "/echo");
        assert_eq!(echoed["query"], "a=1&b=2");
        assert_eq!(echoed["headers"]["x-trace"], "one, two");
        assert_eq!(echoed["headers"]["content-length"], "6");
        assert_eq!(echoed["body"], "héllo");
        assert_eq!(bare["method"], "GET");
        assert_eq!(bare["query"], Value::Null);
        assert_eq!(bare["body"], "");
    }

    #[tokio::test]
    async fn test_redirect_sends_location_with_the_status() {
        let server = TestServer::start().await;
        let raw = raw_client();

        let temporary = raw
            .get(server.url("/redirect?to=/health&status=307"))
            .send()
            .await
            .unwrap();
        let default = raw
            .get(server.url("/redirect?to=http%3A%2F%2Fexample.invalid%2Fx"))
            .send()
            .await
            .unwrap();
        let invalid = raw
            .get(server.url("/redirect?to=/health&status=200"))
            .send()
            .await
            .unwrap();
        let followed = server.get("/redirect?to=/health&status=303").await;

        assert_eq!(temporary.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(temporary.headers()[header::LOCATION], "/health");
        assert_eq!(default.status(), StatusCode::FOUND);
        assert_eq!(
            default.headers()[header::LOCATION],
            "http://example.invalid/x"
        );
        problem(invalid, StatusCode::BAD_REQUEST).await;
        assert_eq!(followed.url().path(), "/health");
        assert_eq!(read_json(followed).await, json!({ "status": "ok" }));
    }

    #[tokio::test]
    async fn test_large_with_content_length() {
        let server = TestServer::start().await;

        let response = server.get("/large?bytes=100000").await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(content_type(&response), "text/plain");
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "100000");
        let body = response.bytes().await.unwrap();
        assert_eq!(body.len(), 100_000);
        assert!(body.iter().all(|&byte| byte == b'a'));
    }

    #[tokio::test]
    async fn test_large_chunked_has_no_content_length() {
        let server = TestServer::start().await;

        let response = raw_client()
            .get(server.url("/large?bytes=100000&chunked=true"))
            .header(header::ACCEPT_ENCODING, "gzip, br")
            .send()
            .await
            .unwrap();

        assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
        assert_eq!(response.headers()[header::TRANSFER_ENCODING], "chunked");
        assert!(response.headers().get(header::CONTENT_ENCODING).is_none());
        let body = response.bytes().await.unwrap();
        assert_eq!(body.len(), 100_000);
        assert!(body.iter().all(|&byte| byte == b'a'));
    }

    #[tokio::test]
    async fn test_large_refuses_a_bad_size() {
        let server = TestServer::start().await;

        let missing = server.get("/large").await;
        let garbage = server.get("/large?bytes=lots").await;

        problem(missing, StatusCode::BAD_REQUEST).await;
        problem(garbage, StatusCode::BAD_REQUEST).await;
    }

    #[tokio::test]
    async fn test_status_returns_the_code_asked_for() {
        let server = TestServer::start().await;

        let teapot = server.get("/status/418?retry_after=7").await;
        let ok = server.get("/status/201").await;
        let empty = server.get("/status/204").await;
        let invalid = server.get("/status/99").await;

        assert_eq!(teapot.headers()[header::RETRY_AFTER], "7");
        let body = problem(teapot, StatusCode::IM_A_TEAPOT).await;
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "I'm a teapot");
        assert_eq!(ok.status(), StatusCode::CREATED);
        assert_eq!(read_json(ok).await, json!({ "status": 201 }));
        assert_eq!(empty.status(), StatusCode::NO_CONTENT);
        assert!(empty.bytes().await.unwrap().is_empty());
        problem(invalid, StatusCode::BAD_REQUEST).await;
    }

    #[tokio::test]
    async fn test_xml_is_a_todo() {
        let server = TestServer::start().await;

        let response = server.get("/xml").await;

        assert_eq!(content_type(&response), "application/xml");
        assert_eq!(
            response.text().await.unwrap(),
            "<todo><id>1</id><title>Read the contract</title><done>false</done></todo>"
        );
    }

    #[tokio::test]
    async fn test_responses_are_compressed_when_asked() {
        let server = TestServer::start().await;
        let raw = raw_client();
        let get_with = |encoding: Option<&'static str>| {
            let mut request = raw.get(server.url("/echo?padding=enough-to-be-worth-compressing"));
            if let Some(encoding) = encoding {
                request = request.header(header::ACCEPT_ENCODING, encoding);
            }
            request.send()
        };

        let gzip = get_with(Some("gzip")).await.unwrap();
        let brotli = get_with(Some("br")).await.unwrap();
        let plain = get_with(None).await.unwrap();
        let decoded = server.get_json("/echo").await;

        assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(
            &gzip.bytes().await.unwrap()[..2],
            [0x1f, 0x8b],
            "gzip magic"
        );
        assert_eq!(brotli.headers()[header::CONTENT_ENCODING], "br");
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(read_json(plain).await["path"], "/echo");
        assert_eq!(
            decoded["path"], "/echo",
            "a decompressing client reads it back"
        );
    }
}

mod connections {
    use super::*;

    #[tokio::test]
    async fn test_http2_with_prior_knowledge() {
        let server = TestServer::start().await;
        install_crypto_provider();
        let h2 = Client::builder().http2_prior_knowledge().build().unwrap();

        let response = h2.get(server.url("/health")).send().await.unwrap();

        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn test_shutdown_finishes_in_flight_requests_then_refuses_connections() {
        let server = TestServer::start().await;
        let addr = server.addr();
        let in_flight = tokio::spawn({
            let client = server.client.clone();
            let url = server.url("/slow?ms=400&chunks=4");
            async move { client.get(url).send().await?.text().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;

        server.shutdown().await;
        let body = in_flight
            .await
            .unwrap()
            .expect("the in-flight response completes");
        let connect = tokio::net::TcpStream::connect(addr).await;

        assert_eq!(body.lines().count(), 4);
        assert!(connect.is_err(), "the listener is closed");
    }

    #[tokio::test]
    async fn test_dropping_the_server_stops_it() {
        let server = TestServer::start().await;
        let addr = server.addr();

        drop(server);
        let deadline = Instant::now() + Duration::from_secs(5);
        let refused = loop {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };

        assert!(refused, "the listener closed after the drop");
    }

    #[tokio::test]
    async fn test_file_database_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("todos.db");
        let config = Config {
            database: Some(path.clone()),
            ..Config::default()
        };

        let first = TestServer::start_with(config.clone()).await;
        first
            .post_json("/todos", &json!({ "title": "persist me" }))
            .await;
        first.shutdown().await;
        let second = TestServer::start_with(config).await;
        let todos = second.get_json("/todos").await;
        second.shutdown().await;

        assert_eq!(
            todos,
            json!([{ "id": 1, "title": "persist me", "done": false }])
        );
        let mode: String = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn test_binary_announces_its_url_and_exits_on_stdin_eof() {
        use std::io::{BufRead, BufReader, Read};
        use std::process::{Command, Stdio};

        let mut child = Command::new(env!("CARGO_BIN_EXE_roundtrip-server"))
            .args(["--port", "0", "--exit-on-stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let base_url = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();

        let health = client().get(format!("{base_url}/health")).send().await;
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();

        assert!(
            base_url.starts_with("http://127.0.0.1:"),
            "announced {line:?}"
        );
        assert_eq!(health.unwrap().status(), StatusCode::OK);
        assert!(status.success());
        assert_eq!(rest, "", "exactly one line on stdout");
    }
}
