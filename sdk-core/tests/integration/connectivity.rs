//! Connectivity: while the app reports no network, requests fail fast.

use std::time::{Duration, Instant};

use roundtrip::{Error, RetryPolicy};
use serde_json::json;

use crate::support::Harness;

#[tokio::test]
async fn test_offline_requests_fail_fast_without_touching_the_network() {
    let harness = Harness::start().await;
    harness.client.set_online(false);

    let error = harness.client.get("/health").await.unwrap_err();

    assert!(matches!(error, Error::Offline));
    assert_eq!(harness.stats().await["total"], 0);

    harness.client.set_online(true);
    assert_eq!(harness.client.get("/health").await.unwrap().status(), 200);
}

#[tokio::test]
async fn test_going_offline_ends_a_retry_wait() {
    let harness = Harness::with_client(|builder| {
        builder.retry_policy(RetryPolicy::default().max_delay(Duration::from_secs(30)))
    })
    .await;
    harness
        .fault(json!({ "path": "/health", "count": 1, "kind": "status", "status": 503, "retry_after": 20 }))
        .await;
    let client = harness.client.clone();
    let started = Instant::now();
    let request = tokio::spawn(async move { client.get("/health").await });

    harness
        .wait_for_stats(|stats| stats["by_route"]["GET /health"] == 1)
        .await;
    harness.client.set_online(false);
    let error = request.await.unwrap().unwrap_err();

    assert!(matches!(error, Error::Offline), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited out the Retry-After"
    );
    assert_eq!(harness.hits("GET /health").await, 1);
}
