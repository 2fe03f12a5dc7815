//! The error model: typed errors, Problem Details, and their classification.

use std::time::Duration;

use roundtrip::{Client, Error, RetryClass, RetryPolicy};
use serde_json::{Value, json};

use crate::support::Harness;

#[tokio::test]
async fn test_not_found_carries_the_problem_details() {
    let harness = Harness::start().await;

    let error = harness.client.get("/todos/999").await.unwrap_err();

    let problem = error.problem().expect("a problem body");
    assert_eq!(problem.problem_type, "about:blank");
    assert_eq!(problem.title.as_deref(), Some("Not Found"));
    assert_eq!(problem.status, Some(404));
    assert_eq!(error.retry_class(), RetryClass::Never);
    assert!(
        error.to_string().starts_with("HTTP 404 Not Found"),
        "{error}"
    );
}

#[tokio::test]
async fn test_validation_problem_keeps_its_extensions() {
    let harness = Harness::start().await;

    let error = harness
        .client
        .post("/todos")
        .json(&json!({ "title": "" }))
        .await
        .unwrap_err();

    let problem = error.problem().unwrap();
    assert_eq!(error.status(), Some(422));
    assert_eq!(problem.problem_type, "/problems/validation");
    assert_eq!(problem.extensions["errors"][0]["field"], "title");
}

#[tokio::test]
async fn test_a_body_of_the_wrong_shape_is_a_decode_error() {
    let harness = Harness::start().await;
    let response = harness.client.get("/health").await.unwrap();

    let error = response.json::<Vec<u32>>().unwrap_err();

    assert!(matches!(error, Error::Decode(_)), "{error:?}");
}

#[tokio::test]
async fn test_a_refused_connection_is_a_transient_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::builder(format!("http://{address}"))
        .retry_policy(RetryPolicy::never())
        .build()
        .unwrap();

    let error = client.get("/health").await.unwrap_err();

    assert!(matches!(error, Error::Connection(_)), "{error:?}");
    assert_eq!(error.retry_class(), RetryClass::Now);
}

#[tokio::test]
async fn test_a_slow_response_times_out() {
    let harness = Harness::with_client(|builder| builder.retry_policy(RetryPolicy::never())).await;

    let error = harness
        .client
        .get("/slow")
        .query("ms", "3000")
        .timeout(Duration::from_millis(200))
        .await
        .unwrap_err();

    assert!(error.is_timeout(), "{error:?}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn test_a_body_over_the_limit_is_refused_with_or_without_length() {
    let harness = Harness::with_client(|builder| builder.max_response_body(1_000)).await;

    for chunked in ["false", "true"] {
        let error = harness
            .client
            .get("/large")
            .query("bytes", "5000")
            .query("chunked", chunked)
            .await
            .unwrap_err();

        assert!(
            matches!(error, Error::BodyTooLarge { limit: 1_000 }),
            "{chunked}: {error:?}"
        );
    }

    let within: Value = harness.client.get("/health").await.unwrap().json().unwrap();
    assert_eq!(within["status"], "ok");
}

#[tokio::test]
async fn test_invalid_input_is_reported_before_sending() {
    let harness = Harness::start().await;

    let bad_header = harness
        .client
        .get("/health")
        .header("bad header", "x")
        .await
        .unwrap_err();
    let bad_value = harness
        .client
        .get("/health")
        .header("x-ok", "line\nbreak")
        .await
        .unwrap_err();
    let bad_base = Client::builder("not a url").build().unwrap_err();

    assert!(
        matches!(bad_header, Error::InvalidInput(_)),
        "{bad_header:?}"
    );
    assert!(matches!(bad_value, Error::InvalidInput(_)), "{bad_value:?}");
    assert!(matches!(bad_base, Error::InvalidInput(_)), "{bad_base:?}");
    assert_eq!(harness.hits("GET /health").await, 0);
}
