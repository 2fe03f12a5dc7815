//! Logging: requests are logged with their outcome, and never with a secret.
//!
//! A binary of its own: `tracing` caches per call site whether anyone listens, and tests on other
//! threads without a subscriber would otherwise race the capture set up here.

#[allow(dead_code)]
#[path = "integration/support.rs"]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use roundtrip::auth::{KeychainStore, MemoryStore, OAuthConfig, TokenStore};
use roundtrip::push::{PushConfig, PushToken};
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

/// Captures this thread's log output with `filter` until the guard is dropped.
fn capture(filter: &str) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn test_logs_describe_requests_without_secrets() {
    let (captured, _guard) = capture("roundtrip=trace,warn");
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

#[tokio::test]
async fn test_a_full_session_leaves_no_token_in_logs_or_files() {
    let (captured, _guard) = capture("roundtrip=trace,roundtrip_server=trace,warn");
    let dir = tempfile::tempdir().unwrap();
    let server = roundtrip_server::start(roundtrip_server::Config {
        database: Some(dir.path().join("server.sqlite3")),
        ..Default::default()
    })
    .await
    .unwrap();
    let url = server.base_url();
    // The real platform store: the kernel keyring on Linux.
    let account = format!("scan-{}", server.addr().port());
    let store = Arc::new(KeychainStore::new("dev.roundtrip.tests", &account).unwrap());
    let client = Client::builder(&url)
        .storage_dir(dir.path().join("client"))
        .oauth(OAuthConfig::discover("roundtrip-demo", &url).unwrap())
        .token_store(store.clone())
        .build()
        .unwrap();
    let control = reqwest_free_control(&url);
    let session = client.session().unwrap();
    let mut secrets = Vec::new();

    session
        .sign_in_with_password("alice", "wonderland")
        .await
        .unwrap();
    secrets.extend(token_values(&*store));
    control
        .post("/_control/oauth/expire-access-tokens")
        .json(&json!({}))
        .await
        .unwrap();
    client.get("/me").await.unwrap();
    secrets.extend(token_values(&*store));
    session.sign_out().await.unwrap();
    server.shutdown().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("refreshing the access token"), "{logs}");
    assert_eq!(secrets.len(), 4, "two access and two refresh tokens");
    let files = all_files(dir.path());
    assert!(
        files
            .iter()
            .any(|(path, _)| path.ends_with("server.sqlite3"))
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a token leaked into the logs"
        );
        for (path, bytes) in &files {
            let found = bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes());
            assert!(!found, "a token leaked into {path}");
        }
    }
    assert!(
        store.load().unwrap().is_none(),
        "sign-out left tokens in the keyring"
    );
}

#[tokio::test]
async fn test_push_tokens_stay_out_of_logs_and_files() {
    let (captured, _guard) = capture("roundtrip=trace,warn");
    let dir = tempfile::tempdir().unwrap();
    let server = roundtrip_server::start(Default::default()).await.unwrap();
    let url = server.base_url();
    let client = Client::builder(&url)
        .storage_dir(dir.path())
        .oauth(OAuthConfig::discover("roundtrip-demo", &url).unwrap())
        .token_store(Arc::new(MemoryStore::default()))
        .push(PushConfig::new().app_version("1.0"))
        .build()
        .unwrap();
    let push = client.push().unwrap();
    let tokens = [
        PushToken::Fcm("fcmPUSHSECRET1:APA91bXyZ".into()),
        PushToken::UnifiedPush("https://up.example/PUSHSECRET2".into()),
        PushToken::Apns(vec![0xc0, 0xff, 0xee, 0x5e, 0xc7, 0xe7, 0x03]),
    ];

    client
        .session()
        .unwrap()
        .sign_in_with_password("alice", "wonderland")
        .await
        .unwrap();
    for token in &tokens {
        push.set_token(token.clone()).unwrap();
        push.reconcile().await.unwrap();
    }
    client.session().unwrap().sign_out().await.unwrap();
    drop(client);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("device registered"), "{logs}");
    assert!(
        logs.contains("fcm:fcmPUS…"),
        "the redacted token is shown: {logs}"
    );
    let files = all_files(dir.path());
    assert!(files.iter().any(|(path, _)| path.ends_with("push.sqlite3")));
    for secret in ["PUSHSECRET1", "PUSHSECRET2", "c0ffee5ec7e703"] {
        assert!(!logs.contains(secret), "a push token leaked into the logs");
        for (path, bytes) in &files {
            let found = bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes());
            assert!(!found, "a push token leaked into {path}");
        }
    }
}

fn reqwest_free_control(url: &str) -> Client {
    Client::builder(url)
        .retry_policy(RetryPolicy::never())
        .build()
        .unwrap()
}

fn token_values(store: &dyn TokenStore) -> Vec<String> {
    let tokens = store.load().unwrap().unwrap();
    let mut values = vec![tokens.access_token.expose().to_owned()];
    values.extend(tokens.refresh_token.map(|token| token.expose().to_owned()));
    values
}

fn all_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(all_files(&path));
        } else {
            files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    files
}
