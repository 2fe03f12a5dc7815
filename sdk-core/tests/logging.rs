//! Logging: requests are logged with their outcome, and never with a secret.
//!
//! A binary of its own: `tracing` caches per call site whether anyone listens, and tests on other
//! threads without a subscriber would otherwise race the capture set up here.

#[allow(dead_code)]
#[path = "integration/support.rs"]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use roundtrip::{Client, RetryPolicy};
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

use support::Harness;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn test_logs_describe_requests_without_secrets() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("roundtrip=trace,warn")
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let harness =
        Harness::with_client(|builder| builder.default_header("x-api-key", "header-secret-1"))
            .await;
    harness
        .fault(json!({ "path": "/echo", "count": 1, "kind": "status", "status": 503 }))
        .await;

    harness
        .client
        .get("/echo?token=query-secret-2")
        .bearer_auth("bearer-secret-3")
        .header("cookie", "sid=cookie-secret-4")
        .await
        .unwrap();
    let _ = harness.client.get("/todos/1?password=query-secret-5").await;
    let refused = Client::builder("http://127.0.0.1:1/?code=query-secret-6")
        .retry_policy(RetryPolicy::default().max_attempts(2))
        .build()
        .unwrap();
    let _ = refused.get("/x?state=query-secret-7").await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying request"), "{logs}");
    assert!(logs.contains("/echo"), "{logs}");
    assert!(logs.contains("HTTP 404"), "{logs}");
    for n in 1..=7 {
        assert!(
            !logs.contains(&format!("secret-{n}")),
            "secret {n} leaked:\n{logs}"
        );
    }
}
