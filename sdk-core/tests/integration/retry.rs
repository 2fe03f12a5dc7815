//! Safe retries: which requests are repeated, how often, and after what wait.

use std::time::{Duration, Instant};

use roundtrip::{Error, RetryClass, RetryPolicy};
use serde_json::{Value, json};

use crate::support::Harness;

#[tokio::test]
async fn test_get_is_retried_after_503s() {
    let harness = Harness::start().await;
    harness
        .fault(json!({ "path": "/todos", "count": 2, "kind": "status", "status": 503 }))
        .await;

    let response = harness.client.get("/todos").await.unwrap();

    assert_eq!(response.attempts(), 3);
    assert_eq!(harness.hits("GET /todos").await, 3);
}

#[tokio::test]
async fn test_get_is_retried_after_a_connection_reset() {
    let harness = Harness::start().await;
    harness
        .fault(json!({ "path": "/todos", "count": 1, "kind": "reset" }))
        .await;

    let response = harness.client.get("/todos").await.unwrap();

    assert_eq!(response.attempts(), 2);
}

#[tokio::test]
async fn test_retry_after_is_waited_for() {
    let harness = Harness::start().await;
    harness
        .fault(json!({ "path": "/health", "count": 1, "kind": "status", "status": 503, "retry_after": 1 }))
        .await;
    let started = Instant::now();

    let response = harness.client.get("/health").await.unwrap();

    assert_eq!(response.attempts(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn test_a_retry_after_beyond_the_max_delay_is_left_to_the_app() {
    let harness = Harness::with_client(|builder| {
        builder.retry_policy(RetryPolicy::default().max_delay(Duration::from_secs(2)))
    })
    .await;
    harness
        .fault(json!({ "path": "/health", "count": 1, "kind": "status", "status": 429, "retry_after": 60 }))
        .await;

    let error = harness.client.get("/health").await.unwrap_err();

    assert_eq!(error.status(), Some(429));
    assert_eq!(
        error.retry_class(),
        RetryClass::After(Duration::from_secs(60))
    );
    assert_eq!(harness.hits("GET /health").await, 1);
}

#[tokio::test]
async fn test_attempts_are_bounded() {
    let harness = Harness::start().await;
    harness
        .fault(json!({ "path": "/todos", "count": 10, "kind": "status", "status": 502 }))
        .await;

    let error = harness.client.get("/todos").await.unwrap_err();

    assert_eq!(error.status(), Some(502));
    assert_eq!(harness.hits("GET /todos").await, 3);
}

#[tokio::test]
async fn test_client_errors_are_not_retried() {
    let harness = Harness::start().await;

    let error = harness.client.get("/todos/404").await.unwrap_err();

    assert_eq!(error.status(), Some(404));
    assert_eq!(harness.hits("GET /todos/404").await, 1);
}

#[tokio::test]
async fn test_post_without_idempotency_key_is_never_retried() {
    let harness = Harness::start().await;
    harness
        .fault(json!({ "path": "/todos", "method": "POST", "count": 1, "kind": "status", "status": 503 }))
        .await;

    let error = harness
        .client
        .post("/todos")
        .json(&json!({ "title": "once" }))
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(503));
    assert_eq!(harness.hits("POST /todos").await, 1);
}

#[tokio::test]
async fn test_post_with_idempotency_key_is_retried_and_applied_once() {
    let harness = Harness::start().await;
    // The server commits the write, then the response is lost on the way back.
    harness
        .fault(json!({ "path": "/todos", "method": "POST", "count": 1, "kind": "reset_after" }))
        .await;

    let response = harness
        .client
        .post("/todos")
        .json(&json!({ "title": "exactly once" }))
        .idempotency_key("create-exactly-once")
        .await
        .unwrap();

    assert_eq!(response.attempts(), 2);
    assert_eq!(response.status(), 201);
    assert_eq!(response.header("idempotency-replayed"), Some("true"));
    assert_eq!(harness.hits("POST /todos").await, 2);
    assert_eq!(harness.stats().await["todos"], 1);
    let todos: Vec<Value> = harness.client.get("/todos").await.unwrap().json().unwrap();
    assert_eq!(todos.len(), 1);
}

#[tokio::test]
async fn test_patch_with_generated_key_sends_the_same_key_on_every_attempt() {
    let harness = Harness::start().await;
    let todo = harness.create_todo("patch me").await;
    let path = format!("/todos/{}", todo["id"]);
    harness
        .fault(json!({ "path": path, "method": "PATCH", "count": 1, "kind": "reset_after" }))
        .await;

    let response = harness
        .client
        .patch(&path)
        .json(&json!({ "done": true }))
        .generated_idempotency_key()
        .await
        .unwrap();

    // A different key on the second attempt would not be recognised as a replay.
    assert_eq!(response.header("idempotency-replayed"), Some("true"));
    assert_eq!(response.attempts(), 2);
}

#[tokio::test]
async fn test_request_policy_overrides_the_client_policy() {
    let harness = Harness::start().await;
    harness
        .fault(json!({ "path": "/todos", "count": 1, "kind": "status", "status": 503 }))
        .await;

    let error = harness
        .client
        .get("/todos")
        .retry_policy(RetryPolicy::never())
        .await
        .unwrap_err();

    assert!(matches!(error, Error::Http { status: 503, .. }));
    assert_eq!(harness.hits("GET /todos").await, 1);
}
