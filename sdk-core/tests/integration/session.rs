//! Sessions: credentials, OAuth sign-in flows, and the refresh engine's rules.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use futures_util::StreamExt;
use roundtrip::auth::{
    Credentials, MemoryStore, OAuthConfig, Secret, SessionEvent, StoredTokens, TokenStore,
};
use roundtrip::{Client, ClientBuilder, Error};
use serde_json::{Value, json};

use crate::support::{Harness, raw_http};

const CLIENT_ID: &str = "roundtrip-demo";

fn oauth(harness_url: &str) -> OAuthConfig {
    OAuthConfig::discover(CLIENT_ID, harness_url)
        .unwrap()
        .redirect_uri("roundtrip-demo:/callback")
        .scopes(["todos"])
}

/// A harness whose client has an OAuth session kept in `store`.
async fn signed_out(
    store: Arc<dyn TokenStore>,
    extra: fn(ClientBuilder) -> ClientBuilder,
) -> Harness {
    let harness = Harness::start().await;
    let url = harness.server.base_url();
    let client = extra(Client::builder(&url).oauth(oauth(&url)).token_store(store))
        .build()
        .unwrap();
    Harness { client, ..harness }
}

async fn signed_in(store: Arc<dyn TokenStore>) -> Harness {
    let harness = signed_out(store, |builder| builder).await;
    harness
        .client
        .session()
        .unwrap()
        .sign_in_with_password("alice", "wonderland")
        .await
        .unwrap();
    harness
}

async fn me(harness: &Harness) -> Result<Value, Error> {
    harness.client.get("/me").await?.json()
}

async fn refreshes(harness: &Harness) -> u64 {
    harness.stats().await["oauth"]["refresh_grants"]
        .as_u64()
        .unwrap()
}

async fn expire_access_tokens(harness: &Harness) {
    harness
        .control("/_control/oauth/expire-access-tokens", json!({}))
        .await;
}

fn stored(store: &dyn TokenStore) -> StoredTokens {
    store.load().unwrap().expect("tokens are stored")
}

#[tokio::test]
async fn test_api_key_in_a_header_goes_to_the_own_origin_only() {
    let harness = Harness::with_client(|builder| {
        builder.credentials(Credentials::ApiKeyHeader {
            name: "x-api-key".into(),
            key: Secret::new("key-123"),
        })
    })
    .await;
    let other = roundtrip_server::start(Default::default()).await.unwrap();

    let own: Value = harness.client.get("/echo").await.unwrap().json().unwrap();
    let foreign: Value = harness
        .client
        .get(&format!("{}/echo", other.base_url()))
        .await
        .unwrap()
        .json()
        .unwrap();

    assert_eq!(own["headers"]["x-api-key"], "key-123");
    assert!(foreign["headers"].get("x-api-key").is_none(), "{foreign}");
}

#[tokio::test]
async fn test_api_key_in_the_query_and_static_bearer_tokens() {
    let query = Harness::with_client(|builder| {
        builder.credentials(Credentials::ApiKeyQuery {
            name: "api_key".into(),
            key: Secret::new("q-key"),
        })
    })
    .await;
    let bearer = Harness::with_client(|builder| {
        builder.credentials(Credentials::BearerToken(Secret::new("static-token")))
    })
    .await;

    let echoed: Value = query
        .client
        .get("/echo")
        .query("a", "1")
        .await
        .unwrap()
        .json()
        .unwrap();
    let authorized: Value = bearer.client.get("/echo").await.unwrap().json().unwrap();

    assert_eq!(echoed["query"], "a=1&api_key=q-key");
    assert_eq!(
        authorized["headers"]["authorization"],
        "Bearer static-token"
    );
}

#[tokio::test]
async fn test_password_sign_in_stores_tokens_and_authenticates_requests() {
    let store = Arc::new(MemoryStore::default());
    let harness = signed_out(store.clone(), |builder| builder).await;
    let session = harness.client.session().unwrap();
    assert!(matches!(me(&harness).await, Err(Error::SignInRequired)));

    let wrong = session
        .sign_in_with_password("alice", "guess")
        .await
        .unwrap_err();
    assert!(
        matches!(&wrong, Error::OAuth { error, .. } if error == "invalid_grant"),
        "{wrong:?}"
    );
    assert!(!session.is_signed_in());

    session
        .sign_in_with_password("alice", "wonderland")
        .await
        .unwrap();

    assert!(session.is_signed_in());
    assert_eq!(session.scope().as_deref(), Some("todos"));
    assert!(stored(&*store).refresh_token.is_some());
    assert_eq!(me(&harness).await.unwrap()["sub"], "alice");
}

#[tokio::test]
async fn test_authorization_code_with_pkce() {
    let harness = signed_out(Arc::new(MemoryStore::default()), |builder| builder).await;
    let session = harness.client.session().unwrap();
    let browser = raw_http(false);

    let request = session.authorization_url().await.unwrap();
    let query: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    assert!(query.contains(&("code_challenge_method".into(), "S256".into())));
    assert!(query.contains(&("state".into(), request.state.clone())));
    let approved = browser
        .get(format!("{}&login_hint=alice", request.url))
        .send()
        .await
        .unwrap();
    let redirect = approved.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        redirect.starts_with("roundtrip-demo:/callback?code="),
        "{redirect}"
    );

    session.complete_authorization(&redirect).await.unwrap();

    assert_eq!(me(&harness).await.unwrap()["sub"], "alice");
    let replayed = session.complete_authorization(&redirect).await.unwrap_err();
    assert!(matches!(&replayed, Error::OAuth { error, .. } if error == "invalid_state"));
}

#[tokio::test]
async fn test_authorization_errors_and_foreign_states_are_typed() {
    let harness = signed_out(Arc::new(MemoryStore::default()), |builder| builder).await;
    let session = harness.client.session().unwrap();

    let request = session.authorization_url().await.unwrap();
    let denied = format!(
        "roundtrip-demo:/callback?error=access_denied&state={}",
        request.state
    );
    let error = session.complete_authorization(&denied).await.unwrap_err();
    assert!(matches!(&error, Error::OAuth { error, .. } if error == "access_denied"));

    let forged = "roundtrip-demo:/callback?code=stolen&state=not-ours";
    let error = session.complete_authorization(forged).await.unwrap_err();
    assert!(matches!(&error, Error::OAuth { error, .. } if error == "invalid_state"));
    assert!(!session.is_signed_in());
}

#[tokio::test]
async fn test_device_authorization_grant() {
    let harness = signed_out(Arc::new(MemoryStore::default()), |builder| builder).await;
    harness
        .control(
            "/_control/oauth/settings",
            json!({ "device_interval_secs": 1 }),
        )
        .await;
    let session = harness.client.session().unwrap();

    let device = session.start_device_authorization().await.unwrap();
    let polling = tokio::spawn({
        let session = session.clone();
        let device = device.clone();
        async move { session.complete_device_authorization(&device).await }
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!polling.is_finished(), "signed in before approval");
    harness
        .control(
            "/_control/oauth/device/approve",
            json!({ "user_code": device.user_code, "username": "bob" }),
        )
        .await;

    polling.await.unwrap().unwrap();
    assert_eq!(me(&harness).await.unwrap()["sub"], "bob");
}

#[tokio::test]
async fn test_a_token_near_expiry_is_refreshed_before_use() {
    let store = Arc::new(MemoryStore::default());
    let harness = signed_out(store.clone(), |builder| builder).await;
    // Tokens live 30 s, within the 60 s refresh margin: due as soon as they are issued.
    harness
        .control(
            "/_control/oauth/settings",
            json!({ "access_token_ttl_secs": 30 }),
        )
        .await;
    let session = harness.client.session().unwrap();
    session
        .sign_in_with_password("alice", "wonderland")
        .await
        .unwrap();
    let first = stored(&*store);

    assert_eq!(me(&harness).await.unwrap()["sub"], "alice");

    assert_eq!(refreshes(&harness).await, 1);
    assert_eq!(
        harness.hits("GET /me").await,
        1,
        "the stale token was never sent"
    );
    assert_ne!(stored(&*store).access_token, first.access_token);
}

#[tokio::test]
async fn test_a_401_refreshes_and_retries_once() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    expire_access_tokens(&harness).await;

    let response = harness.client.get("/me").await.unwrap();

    assert_eq!(response.attempts(), 2);
    assert_eq!(refreshes(&harness).await, 1);
    assert_eq!(harness.hits("GET /me").await, 2);
}

#[tokio::test]
async fn test_a_401_for_a_token_already_replaced_does_not_refresh_again() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    // The first /me is held at the server; by the time it is rejected, the second request has
    // already refreshed the token.
    harness
        .fault(json!({ "path": "/me", "count": 1, "kind": "delay", "delay_ms": 800 }))
        .await;
    expire_access_tokens(&harness).await;
    let slow = tokio::spawn({
        let client = harness.client.clone();
        async move { client.get("/me").await }
    });
    harness
        .wait_for_stats(|stats| stats["by_route"]["GET /me"] == 1)
        .await;

    let fast = harness.client.get("/me").await.unwrap();
    let slow = slow.await.unwrap().unwrap();

    assert_eq!((fast.attempts(), slow.attempts()), (2, 2));
    assert_eq!(refreshes(&harness).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_a_thousand_concurrent_requests_cause_exactly_one_refresh() {
    let harness = signed_in(Arc::new(MemoryStore::default())).await;
    expire_access_tokens(&harness).await;

    let requests: Vec<_> = (0..1_000)
        .map(|_| {
            let client = harness.client.clone();
            tokio::spawn(async move { client.get("/me").await.map(|response| response.status()) })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap(), 200);
    }

    assert_eq!(refreshes(&harness).await, 1);
}

#[tokio::test]
async fn test_a_refresh_completes_when_its_request_is_cancelled() {
    let store = Arc::new(MemoryStore::default());
    let harness = signed_in(store.clone()).await;
    let before = stored(&*store);
    harness
        .fault(json!({ "path": "/oauth/token", "count": 1, "kind": "delay", "delay_ms": 500 }))
        .await;
    expire_access_tokens(&harness).await;
    let request = tokio::spawn({
        let client = harness.client.clone();
        async move { client.get("/me").await }
    });
    // The sign-in made the first token request; the refresh is the second.
    harness
        .wait_for_stats(|stats| stats["by_route"]["POST /oauth/token"] == 2)
        .await;

    request.abort();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let after = stored(&*store);
    assert_ne!(
        after.refresh_token, before.refresh_token,
        "the rotation was not kept"
    );
    assert_eq!(me(&harness).await.unwrap()["sub"], "alice");
    assert_eq!(refreshes(&harness).await, 1);
}

/// Holds each `save` until the test lets it go, so the test can look at the server meanwhile.
struct GatedStore {
    inner: MemoryStore,
    saving: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
    saves: AtomicUsize,
}

impl TokenStore for GatedStore {
    fn load(&self) -> Result<Option<StoredTokens>, Error> {
        self.inner.load()
    }

    fn save(&self, tokens: &StoredTokens) -> Result<(), Error> {
        if self.saves.fetch_add(1, Ordering::SeqCst) > 0 {
            self.saving.lock().unwrap().send(()).unwrap();
            self.release
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(5))
                .unwrap();
        }
        self.inner.save(tokens)
    }

    fn clear(&self) -> Result<(), Error> {
        self.inner.clear()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_rotated_tokens_are_persisted_before_they_are_used() {
    let (saving_tx, saving_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let store = Arc::new(GatedStore {
        inner: MemoryStore::default(),
        saving: Mutex::new(saving_tx),
        release: Mutex::new(release_rx),
        saves: AtomicUsize::new(0),
    });
    let harness = signed_in(store.clone()).await;
    expire_access_tokens(&harness).await;
    let request = tokio::spawn({
        let client = harness.client.clone();
        async move { client.get("/me").await }
    });

    tokio::task::spawn_blocking(move || saving_rx.recv_timeout(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("the refresh saves the new tokens");
    let while_saving = harness.hits("GET /me").await;
    release_tx.send(()).unwrap();
    request.await.unwrap().unwrap();

    assert_eq!(
        while_saving, 1,
        "the new token was used before it was persisted"
    );
    assert_eq!(harness.hits("GET /me").await, 2);
}

#[tokio::test]
async fn test_a_rotated_refresh_token_is_never_sent_again() {
    let store = Arc::new(MemoryStore::default());
    let harness = signed_in(store.clone()).await;

    for round in 1..=4 {
        expire_access_tokens(&harness).await;
        assert_eq!(me(&harness).await.unwrap()["sub"], "alice", "round {round}");
    }

    let oauth = &harness.stats().await["oauth"];
    assert_eq!(oauth["refresh_grants"], 4);
    // Sending a rotated token again would have made the server revoke the grant.
    assert_eq!(oauth["refresh_reuse_detected"], 0);
    assert!(harness.client.session().unwrap().is_signed_in());
}

#[tokio::test]
async fn test_transient_refresh_failures_keep_the_session() {
    let store = Arc::new(MemoryStore::default());
    let harness = signed_in(store.clone()).await;
    let tokens = stored(&*store);
    expire_access_tokens(&harness).await;

    for rule in [
        json!({ "path": "/oauth/token", "count": 1, "kind": "status", "status": 503 }),
        json!({ "path": "/oauth/token", "count": 1, "kind": "reset" }),
        json!({ "path": "/oauth/token", "count": 1, "kind": "status", "status": 500 }),
    ] {
        harness.fault(rule.clone()).await;
        let error = me(&harness).await.unwrap_err();

        assert!(error.is_transient(), "{rule}: {error:?}");
        assert!(harness.client.session().unwrap().is_signed_in(), "{rule}");
        assert_eq!(stored(&*store), tokens, "{rule}");
    }

    assert_eq!(me(&harness).await.unwrap()["sub"], "alice");
}

#[tokio::test]
async fn test_a_definitive_rejection_ends_the_session() {
    let store = Arc::new(MemoryStore::default());
    let harness = signed_in(store.clone()).await;
    let session = harness.client.session().unwrap();
    let mut events = Box::pin(session.events());
    // Someone else uses the refresh token first: the server sees our refresh as a reuse.
    let stolen = stored(&*store).refresh_token.unwrap();
    let thief = raw_http(true);
    let form = format!(
        "grant_type=refresh_token&client_id={CLIENT_ID}&refresh_token={}",
        stolen.expose()
    );
    let rotated = thief
        .post(format!("{}/oauth/token", harness.server.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    expire_access_tokens(&harness).await;

    let error = me(&harness).await.unwrap_err();

    assert!(matches!(error, Error::SignInRequired), "{error:?}");
    assert!(!session.is_signed_in());
    assert!(store.load().unwrap().is_none());
    assert_eq!(events.next().await, Some(SessionEvent::Expired));
}

#[tokio::test]
async fn test_the_breaker_stops_refresh_loops() {
    let store = Arc::new(MemoryStore::default());
    let harness = signed_out(store.clone(), |builder| {
        builder.refresh_limit(2, Duration::from_secs(60))
    })
    .await;
    harness
        .client
        .session()
        .unwrap()
        .sign_in_with_password("alice", "wonderland")
        .await
        .unwrap();

    for _ in 0..2 {
        expire_access_tokens(&harness).await;
        me(&harness).await.unwrap();
    }
    expire_access_tokens(&harness).await;
    let error = me(&harness).await.unwrap_err();

    assert!(matches!(error, Error::RefreshThrottled { .. }), "{error:?}");
    assert!(error.is_transient());
    assert!(harness.client.session().unwrap().is_signed_in());
    assert_eq!(refreshes(&harness).await, 2);
}

#[tokio::test]
async fn test_sign_out_revokes_and_forgets_and_events_tell_the_story() {
    let store = Arc::new(MemoryStore::default());
    let harness = signed_out(store.clone(), |builder| builder).await;
    let session = harness.client.session().unwrap();
    let events = tokio::spawn(session.events().take(3).collect::<Vec<_>>());

    session
        .sign_in_with_password("alice", "wonderland")
        .await
        .unwrap();
    expire_access_tokens(&harness).await;
    me(&harness).await.unwrap();
    let token = stored(&*store).access_token;
    session.sign_out().await.unwrap();

    assert_eq!(
        events.await.unwrap(),
        [
            SessionEvent::SignedIn,
            SessionEvent::Refreshed,
            SessionEvent::SignedOut
        ]
    );
    assert!(store.load().unwrap().is_none());
    assert_eq!(harness.stats().await["oauth"]["revocations"], 1);
    let hits = harness.hits("GET /me").await;
    assert!(matches!(me(&harness).await, Err(Error::SignInRequired)));
    assert_eq!(
        harness.hits("GET /me").await,
        hits,
        "a signed-out request reached the server"
    );
    let revoked = raw_http(true)
        .get(format!("{}/me", harness.server.base_url()))
        .bearer_auth(token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);
}

#[tokio::test]
async fn test_a_new_client_picks_up_the_stored_session() {
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::default());
    let harness = signed_in(store.clone()).await;
    let url = harness.server.base_url();

    let restarted = Client::builder(&url)
        .oauth(oauth(&url))
        .token_store(store)
        .build()
        .unwrap();

    assert!(restarted.session().unwrap().is_signed_in());
    let me: Value = restarted.get("/me").await.unwrap().json().unwrap();
    assert_eq!(me["sub"], "alice");
}
