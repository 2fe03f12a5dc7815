//! The device registry of the contract, end to end: a real server on loopback
//! and a real HTTP client. Every test starts its own server with its own
//! in-memory database.

use std::sync::Once;

use reqwest::{Client, Response, StatusCode, header};
use roundtrip_server::{Config, RunningServer};
use serde_json::{Value, json};

const CLIENT_ID: &str = "roundtrip-demo";
const DEVICE: &str = "/devices/0b6f7d52-4f0e-4c1e-9a57-1f1b2a7c9d10";
const APNS_TOKEN: &str = "5c3e1f6a9b0d2e4f7a8c1b3d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f";

struct TestServer {
    server: RunningServer,
    client: Client,
}

impl TestServer {
    async fn start() -> Self {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
        let server = roundtrip_server::start(Config::default())
            .await
            .expect("server starts");

        Self {
            server,
            client: Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// An access token for `username`, from the password grant.
    async fn sign_in(&self, username: &str, password: &str) -> String {
        let form = [
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", CLIENT_ID),
        ];
        let response = self
            .client
            .post(self.url("/oauth/token"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        json_of(response).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut request = self
            .client
            .put(self.url(path))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.delete(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn devices(&self) -> Vec<Value> {
        let response = self.get("/_control/devices", None).await;
        assert_eq!(response.status(), StatusCode::OK);

        json_of(response).await.as_array().unwrap().clone()
    }

    async fn push_stats(&self) -> Value {
        json_of(self.get("/_control/stats", None).await).await["push"].clone()
    }
}

fn fcm(token: &str) -> Value {
    json!({
        "platform": "fcm",
        "token": token,
        "app_version": "2.1.0",
        "locale": "fr-CH",
        "opt_in": true,
    })
}

async fn json_of(response: Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );

    json_of(response).await
}

#[tokio::test]
async fn test_registering_needs_a_valid_bearer_token() {
    let server = TestServer::start().await;

    let anonymous = server.put(DEVICE, None, &fcm("t1")).await;
    let forged = server.put(DEVICE, Some("forged"), &fcm("t1")).await;
    let verify = server.get(DEVICE, None).await;

    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"roundtrip\""
    );
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let challenge = forged.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(verify.status(), StatusCode::UNAUTHORIZED);
    assert!(server.devices().await.is_empty());
}

#[tokio::test]
async fn test_a_put_creates_then_replaces_and_never_echoes_the_token() {
    let server = TestServer::start().await;
    let alice = server.sign_in("alice", "wonderland").await;

    let created = server.put(DEVICE, Some(&alice), &fcm("token-1")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let body = json_of(created).await;
    let replaced = server
        .put(
            DEVICE,
            Some(&alice),
            &json!({ "platform": "fcm", "token": "token-2", "opt_in": false }),
        )
        .await;

    assert_eq!(
        body,
        json!({
            "installation_id": DEVICE.trim_start_matches("/devices/"),
            "platform": "fcm",
            "app_version": "2.1.0",
            "locale": "fr-CH",
            "opt_in": true,
            "user": "alice",
        })
    );
    assert_eq!(replaced.status(), StatusCode::OK);
    let devices = server.devices().await;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["token"], "token-2");
    assert_eq!(devices[0]["opt_in"], false);
    assert_eq!(devices[0]["app_version"], Value::Null);
    let stats = server.push_stats().await;
    assert_eq!(stats["registrations"], 2);
    assert_eq!(stats["devices"], 1);
}

#[tokio::test]
async fn test_get_shows_the_owner_their_registration_and_nobody_else() {
    let server = TestServer::start().await;
    let alice = server.sign_in("alice", "wonderland").await;
    let bob = server.sign_in("bob", "builder").await;
    server.put(DEVICE, Some(&alice), &fcm("t")).await;

    let own = server.get(DEVICE, Some(&alice)).await;
    let foreign = server.get(DEVICE, Some(&bob)).await;
    let unknown = server.get("/devices/nope", Some(&alice)).await;

    assert_eq!(own.status(), StatusCode::OK);
    let own = json_of(own).await;
    assert_eq!(own["user"], "alice");
    assert!(own.get("token").is_none(), "{own}");
    problem(foreign, StatusCode::NOT_FOUND).await;
    problem(unknown, StatusCode::NOT_FOUND).await;
    assert_eq!(server.push_stats().await["verifications"], 3);
}

#[tokio::test]
async fn test_a_put_by_another_user_takes_the_device_over() {
    let server = TestServer::start().await;
    let alice = server.sign_in("alice", "wonderland").await;
    let bob = server.sign_in("bob", "builder").await;
    server.put(DEVICE, Some(&alice), &fcm("t")).await;

    let taken = server.put(DEVICE, Some(&bob), &fcm("t")).await;

    assert_eq!(taken.status(), StatusCode::OK);
    assert_eq!(json_of(taken).await["user"], "bob");
    problem(
        server.get(DEVICE, Some(&alice)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(server.devices().await[0]["user"], "bob");
}

#[tokio::test]
async fn test_a_token_moves_to_the_installation_that_registers_it_last() {
    let server = TestServer::start().await;
    let alice = server.sign_in("alice", "wonderland").await;
    let apns = json!({ "platform": "apns", "token": APNS_TOKEN, "opt_in": true });
    server
        .put("/devices/before-reinstall", Some(&alice), &apns)
        .await;

    let moved = server
        .put("/devices/after-reinstall", Some(&alice), &apns)
        .await;

    assert_eq!(moved.status(), StatusCode::CREATED);
    let devices = server.devices().await;
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["installation_id"], "after-reinstall");
}

#[tokio::test]
async fn test_delete_by_the_owner_or_by_the_installation_id_alone() {
    let server = TestServer::start().await;
    let alice = server.sign_in("alice", "wonderland").await;
    let bob = server.sign_in("bob", "builder").await;
    server.put(DEVICE, Some(&alice), &fcm("t")).await;
    server.put("/devices/second", Some(&alice), &fcm("u")).await;

    let by_bob = server.delete(DEVICE, Some(&bob)).await;
    let forged = server.delete(DEVICE, Some("forged")).await;
    let by_alice = server.delete(DEVICE, Some(&alice)).await;
    let anonymous = server.delete("/devices/second", None).await;
    let again = server.delete("/devices/second", None).await;

    problem(by_bob, StatusCode::NOT_FOUND).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(by_alice.status(), StatusCode::NO_CONTENT);
    assert_eq!(anonymous.status(), StatusCode::NO_CONTENT);
    problem(again, StatusCode::NOT_FOUND).await;
    let stats = server.push_stats().await;
    assert_eq!(stats["unregistrations"], 5);
    assert_eq!(stats["anonymous_unregistrations"], 2);
    assert_eq!(stats["devices"], 0);
}

#[tokio::test]
async fn test_bodies_and_ids_are_checked() {
    let server = TestServer::start().await;
    let alice = server.sign_in("alice", "wonderland").await;

    let not_json = server.put(DEVICE, Some(&alice), &json!("fcm")).await;
    let wrong_type = server
        .put(DEVICE, Some(&alice), &json!({ "opt_in": "yes" }))
        .await;
    let invalid = server
        .put(
            DEVICE,
            Some(&alice),
            &json!({ "platform": "apns", "token": "not hex", "locale": "" }),
        )
        .await;
    let bad_id = server.put("/devices/a$b", Some(&alice), &fcm("t")).await;

    problem(not_json, StatusCode::BAD_REQUEST).await;
    problem(wrong_type, StatusCode::BAD_REQUEST).await;
    let invalid = problem(invalid, StatusCode::UNPROCESSABLE_ENTITY).await;
    let fields: Vec<_> = invalid["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["token", "locale", "opt_in"]);
    problem(bad_id, StatusCode::BAD_REQUEST).await;
    assert!(server.devices().await.is_empty());
}

#[tokio::test]
async fn test_the_provider_control_drops_a_registration() {
    let server = TestServer::start().await;
    let alice = server.sign_in("alice", "wonderland").await;
    server.put(DEVICE, Some(&alice), &fcm("t")).await;
    let control = DEVICE.replace("/devices/", "/_control/devices/");

    let dropped = server.delete(&control, None).await;
    let again = server.delete(&control, None).await;

    assert_eq!(dropped.status(), StatusCode::NO_CONTENT);
    problem(again, StatusCode::NOT_FOUND).await;
    problem(
        server.get(DEVICE, Some(&alice)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let stats = server.push_stats().await;
    assert_eq!(stats["provider_deletions"], 1);
    assert_eq!(stats["unregistrations"], 0, "control calls are not counted");
}

#[tokio::test]
async fn test_reset_forgets_every_device() {
    let server = TestServer::start().await;
    let alice = server.sign_in("alice", "wonderland").await;
    server.put(DEVICE, Some(&alice), &fcm("t")).await;

    let reset = server
        .client
        .post(server.url("/_control/reset"))
        .send()
        .await
        .unwrap();

    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert!(server.devices().await.is_empty());
    assert_eq!(server.push_stats().await["registrations"], 0);
}
