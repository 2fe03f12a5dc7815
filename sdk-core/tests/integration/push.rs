//! Push: the device registration against the reference server's registry.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use roundtrip::auth::{MemoryStore, OAuthConfig};
use roundtrip::push::{Push, PushConfig, PushToken};
use roundtrip::{Client, Error};
use serde_json::{Value, json};

use crate::support::Harness;

const TOKEN: &str = "fcm-token-one:APA91bG3x";
const ROTATED: &str = "fcm-token-two:APA91bK7q";

/// One app installation: a storage directory and a token store that outlive its clients, so
/// that a test can restart the app.
struct Device {
    dir: tempfile::TempDir,
    store: Arc<MemoryStore>,
}

impl Device {
    fn new() -> Device {
        Device {
            dir: tempfile::tempdir().unwrap(),
            store: Arc::new(MemoryStore::default()),
        }
    }

    /// Starts the app: a client with a session and push, in this device's directory.
    fn start(&self, harness: &Harness, config: PushConfig) -> Client {
        let url = harness.server.base_url();
        Client::builder(&url)
            .storage_dir(self.dir.path())
            .oauth(OAuthConfig::discover("roundtrip-demo", &url).unwrap())
            .token_store(self.store.clone())
            .push(config)
            .build()
            .unwrap()
    }
}

fn config() -> PushConfig {
    PushConfig::new()
        .app_version("2.1.0")
        .locale("fr-CH")
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

fn push(client: &Client) -> Push {
    client.push().expect("the client was built with push")
}

async fn sign_in(client: &Client, username: &str, password: &str) {
    client
        .session()
        .unwrap()
        .sign_in_with_password(username, password)
        .await
        .unwrap();
}

/// A signed-in app whose device is registered with [`TOKEN`].
async fn registered(harness: &Harness, device: &Device) -> Client {
    let client = device.start(harness, config());
    sign_in(&client, "alice", "wonderland").await;
    push(&client)
        .set_token(PushToken::Fcm(TOKEN.into()))
        .unwrap();
    push(&client).reconcile().await.unwrap();
    client
}

/// Every registration the server holds.
async fn devices(harness: &Harness) -> Vec<Value> {
    harness
        .control
        .get("/_control/devices")
        .await
        .unwrap()
        .json()
        .unwrap()
}

async fn push_stats(harness: &Harness) -> Value {
    harness.stats().await["push"].clone()
}

/// Requests the server saw for this installation's registration, faulted ones included.
async fn hits(harness: &Harness, method: &str, push: &Push) -> u64 {
    let route = format!("{method} /devices/{}", push.installation_id());
    harness.hits(&route).await
}

async fn wait_for_devices(harness: &Harness, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..100 {
        let devices = devices(harness).await;
        if check(&devices) {
            return devices;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the registry never reached the expected state: {:?}",
        devices(harness).await
    );
}

fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        bytes.windows(needle.len()).any(|window| window == needle)
    })
}

#[tokio::test]
async fn test_first_registration_happens_in_the_background() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = device.start(&harness, config());
    sign_in(&client, "alice", "wonderland").await;
    let push = push(&client);

    push.set_token(PushToken::Fcm(TOKEN.into())).unwrap();

    let registered = wait_for_devices(&harness, |devices| devices.len() == 1).await;
    assert_eq!(registered[0]["installation_id"], push.installation_id());
    assert_eq!(registered[0]["platform"], "fcm");
    assert_eq!(registered[0]["token"], TOKEN);
    assert_eq!(registered[0]["app_version"], "2.1.0");
    assert_eq!(registered[0]["locale"], "fr-CH");
    assert_eq!(registered[0]["opt_in"], true);
    assert_eq!(registered[0]["user"], "alice");
    let status = push.reconcile().await.unwrap();
    assert!(status.registered && status.up_to_date, "{status:?}");
    assert_eq!(status.user.as_deref(), Some("alice"));
    assert_eq!(push_stats(&harness).await["registrations"], 1);
    assert!(
        !files_contain(device.dir.path(), TOKEN.as_bytes()),
        "the token was written to disk"
    );
}

#[tokio::test]
async fn test_apns_tokens_are_registered_as_hex() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = device.start(&harness, config());
    sign_in(&client, "alice", "wonderland").await;

    push(&client)
        .set_token(PushToken::Apns(vec![0xde, 0xad, 0xbe, 0xef, 0x01]))
        .unwrap();
    push(&client).reconcile().await.unwrap();

    let registered = devices(&harness).await;
    assert_eq!(registered[0]["platform"], "apns");
    assert_eq!(registered[0]["token"], "deadbeef01");
}

#[tokio::test]
async fn test_a_restart_with_nothing_changed_makes_no_call() {
    let harness = Harness::start().await;
    let device = Device::new();
    let first = registered(&harness, &device).await;
    let installation_id = push(&first).installation_id().to_owned();
    drop(first);
    let before = harness.stats().await["total"].as_u64().unwrap();

    let restarted = device.start(&harness, config());
    push(&restarted)
        .set_token(PushToken::Fcm(TOKEN.into()))
        .unwrap();
    push(&restarted).set_opt_in(true).unwrap();
    let status = push(&restarted).reconcile().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(push(&restarted).installation_id(), installation_id);
    assert!(status.registered && status.up_to_date, "{status:?}");
    assert_eq!(
        harness.stats().await["total"].as_u64().unwrap(),
        before,
        "the restarted app called the server"
    );
}

#[tokio::test]
async fn test_a_new_app_version_registers_again_after_a_restart() {
    let harness = Harness::start().await;
    let device = Device::new();
    drop(registered(&harness, &device).await);

    let updated = device.start(&harness, config().app_version("2.2.0"));
    push(&updated)
        .set_token(PushToken::Fcm(TOKEN.into()))
        .unwrap();
    push(&updated).reconcile().await.unwrap();

    assert_eq!(devices(&harness).await[0]["app_version"], "2.2.0");
    assert_eq!(push_stats(&harness).await["registrations"], 2);
}

#[tokio::test]
async fn test_a_rotated_token_is_registered_again() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = registered(&harness, &device).await;

    push(&client)
        .set_token(PushToken::Fcm(ROTATED.into()))
        .unwrap();

    let rotated = wait_for_devices(&harness, |devices| {
        devices
            .first()
            .is_some_and(|device| device["token"] == ROTATED)
    })
    .await;
    assert_eq!(rotated.len(), 1);
    assert_eq!(push_stats(&harness).await["registrations"], 2);
    push(&client)
        .set_token(PushToken::Fcm(ROTATED.into()))
        .unwrap();
    push(&client).reconcile().await.unwrap();
    assert_eq!(
        push_stats(&harness).await["registrations"],
        2,
        "the same token was registered twice"
    );
}

#[tokio::test]
async fn test_opting_out_registers_again_and_is_remembered() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = registered(&harness, &device).await;

    push(&client).set_opt_in(false).unwrap();
    push(&client).reconcile().await.unwrap();
    drop(client);
    let restarted = device.start(&harness, config());
    push(&restarted)
        .set_token(PushToken::Fcm(TOKEN.into()))
        .unwrap();
    push(&restarted).reconcile().await.unwrap();

    assert_eq!(devices(&harness).await[0]["opt_in"], false);
    assert_eq!(push_stats(&harness).await["registrations"], 2);
}

#[tokio::test]
async fn test_a_sign_in_as_another_user_registers_for_that_user() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = registered(&harness, &device).await;

    sign_in(&client, "bob", "builder").await;

    let taken = wait_for_devices(&harness, |devices| {
        devices
            .first()
            .is_some_and(|device| device["user"] == "bob")
    })
    .await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0]["token"], TOKEN);
    let status = push(&client).reconcile().await.unwrap();
    assert_eq!(status.user.as_deref(), Some("bob"));
}

#[tokio::test]
async fn test_sign_out_unregisters_before_the_tokens_are_dropped() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = registered(&harness, &device).await;
    let push = push(&client);

    client.session().unwrap().sign_out().await.unwrap();

    // Done with the session's tokens, within sign-out: nothing was left to send later.
    assert!(devices(&harness).await.is_empty());
    let status = push.status();
    assert!(!status.registered && status.up_to_date, "{status:?}");
    let stats = harness.stats().await;
    assert_eq!(stats["push"]["unregistrations"], 1);
    assert_eq!(
        stats["push"]["anonymous_unregistrations"], 0,
        "the unregistration was made without the session's tokens"
    );
    assert_eq!(stats["oauth"]["revocations"], 1);
}

#[tokio::test]
async fn test_after_sign_out_the_next_user_is_registered() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = registered(&harness, &device).await;
    client.session().unwrap().sign_out().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        devices(&harness).await.is_empty(),
        "registered while signed out"
    );

    sign_in(&client, "bob", "builder").await;

    let registered = wait_for_devices(&harness, |devices| devices.len() == 1).await;
    assert_eq!(registered[0]["user"], "bob");
    assert_eq!(registered[0]["token"], TOKEN);
}

#[tokio::test]
async fn test_an_offline_sign_out_queues_the_unregistration_across_a_restart() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = registered(&harness, &device).await;
    client.set_online(false);

    client.session().unwrap().sign_out().await.unwrap();

    assert!(!client.session().unwrap().is_signed_in());
    assert!(!push(&client).status().up_to_date, "nothing was queued");
    assert_eq!(devices(&harness).await.len(), 1);
    drop(client);
    let restarted = device.start(&harness, config());
    wait_for_devices(&harness, <[Value]>::is_empty).await;
    let stats = push_stats(&harness).await;
    assert_eq!(stats["unregistrations"], 1);
    assert_eq!(stats["anonymous_unregistrations"], 1);
    let status = push(&restarted).status();
    assert!(status.up_to_date && !status.registered, "{status:?}");
}

#[tokio::test]
async fn test_a_registration_the_server_dropped_is_repaired() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = device.start(
        &harness,
        config().reverify_interval(Duration::from_millis(300)),
    );
    sign_in(&client, "alice", "wonderland").await;
    push(&client)
        .set_token(PushToken::Fcm(TOKEN.into()))
        .unwrap();
    push(&client).reconcile().await.unwrap();

    harness
        .control
        .delete(&format!(
            "/_control/devices/{}",
            push(&client).installation_id()
        ))
        .await
        .unwrap();

    let repaired = wait_for_devices(&harness, |devices| devices.len() == 1).await;
    assert_eq!(repaired[0]["token"], TOKEN);
    let stats = push_stats(&harness).await;
    assert_eq!(stats["provider_deletions"], 1);
    assert_eq!(stats["registrations"], 2);
    assert!(stats["verifications"].as_u64().unwrap() >= 1, "{stats}");
}

#[tokio::test]
async fn test_without_the_interval_passing_nothing_is_verified() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = registered(&harness, &device).await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    push(&client).reconcile().await.unwrap();

    assert_eq!(push_stats(&harness).await["verifications"], 0);
}

#[tokio::test]
async fn test_a_registration_is_retried_after_503s() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = device.start(&harness, config());
    sign_in(&client, "alice", "wonderland").await;
    // More failures than one request's three attempts: the component itself must try again.
    harness
        .fault(json!({
            "path": "/devices", "method": "PUT", "count": 4, "kind": "status", "status": 503
        }))
        .await;

    push(&client)
        .set_token(PushToken::Fcm(TOKEN.into()))
        .unwrap();

    wait_for_devices(&harness, |devices| devices.len() == 1).await;
    assert_eq!(hits(&harness, "PUT", &push(&client)).await, 5);
    assert_eq!(harness.stats().await["faults_injected"], 4);
    let status = push(&client).reconcile().await.unwrap();
    assert_eq!(status.last_error, None);
}

#[tokio::test]
async fn test_a_registration_made_offline_resumes_when_the_network_returns() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = device.start(&harness, config());
    sign_in(&client, "alice", "wonderland").await;
    client.set_online(false);

    push(&client)
        .set_token(PushToken::Fcm(TOKEN.into()))
        .unwrap();
    let error = push(&client).reconcile().await.unwrap_err();
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert!(matches!(error, Error::Offline), "{error:?}");
    assert_eq!(hits(&harness, "PUT", &push(&client)).await, 0);
    client.set_online(true);
    wait_for_devices(&harness, |devices| devices.len() == 1).await;
}

#[tokio::test]
async fn test_a_401_goes_through_the_session_refresh() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = device.start(&harness, config());
    sign_in(&client, "alice", "wonderland").await;
    harness
        .control("/_control/oauth/expire-access-tokens", json!({}))
        .await;

    push(&client)
        .set_token(PushToken::Fcm(TOKEN.into()))
        .unwrap();
    push(&client).reconcile().await.unwrap();

    assert_eq!(devices(&harness).await.len(), 1);
    assert_eq!(harness.stats().await["oauth"]["refresh_grants"], 1);
    assert_eq!(hits(&harness, "PUT", &push(&client)).await, 2);
}

#[tokio::test]
async fn test_signed_out_nothing_is_registered() {
    let harness = Harness::start().await;
    let device = Device::new();
    let client = device.start(&harness, config());

    push(&client)
        .set_token(PushToken::Fcm(TOKEN.into()))
        .unwrap();
    let status = push(&client).reconcile().await.unwrap();

    assert!(!status.registered, "{status:?}");
    assert_eq!(harness.stats().await["total"], 0);
}
