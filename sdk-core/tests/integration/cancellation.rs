//! Cancellation: dropping a request's future stops the work, on the server's side too.

use std::time::Duration;

use crate::support::Harness;

#[tokio::test]
async fn test_dropping_the_future_closes_the_connection() {
    let harness = Harness::start().await;
    let client = harness.client.clone();
    let request = tokio::spawn(async move { client.get("/slow").query("ms", "5000").await });
    harness
        .wait_for_stats(|stats| stats["slow"]["started"] == 1)
        .await;

    request.abort();

    let stats = harness
        .wait_for_stats(|stats| stats["slow"]["aborted"] == 1)
        .await;
    assert_eq!(stats["slow"]["completed"], 0);
    assert!(request.await.unwrap_err().is_cancelled());
}

#[tokio::test]
async fn test_a_timeout_around_send_cancels_the_request() {
    let harness = Harness::start().await;

    let outcome = tokio::time::timeout(
        Duration::from_millis(300),
        harness.client.get("/slow").query("ms", "5000").send(),
    )
    .await;

    assert!(outcome.is_err());
    let stats = harness
        .wait_for_stats(|stats| stats["slow"]["aborted"] == 1)
        .await;
    assert_eq!(stats["slow"]["completed"], 0);
}
