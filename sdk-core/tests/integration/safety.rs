//! Safe defaults: no plain HTTP off loopback, no credentials across origins, no secrets in Debug.

use roundtrip::{Client, Error};
use roundtrip_server::Config;
use serde_json::Value;

use crate::support::Harness;

#[tokio::test]
async fn test_plain_http_to_a_remote_host_is_refused_unless_opted_in() {
    let refused = Client::builder("http://api.example.com")
        .build()
        .unwrap_err();
    let allowed = Client::builder("http://api.example.com")
        .allow_insecure_http(true)
        .build();

    assert!(matches!(refused, Error::InsecureTransport { ref host } if host == "api.example.com"));
    assert!(allowed.is_ok());
}

#[tokio::test]
async fn test_an_absolute_plain_http_target_is_refused_per_request() {
    let harness = Harness::start().await;

    let error = harness
        .client
        .get("http://api.example.com/todos")
        .await
        .unwrap_err();

    assert!(
        matches!(error, Error::InsecureTransport { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn test_credentials_are_not_forwarded_to_another_origin() {
    let harness = Harness::start().await;
    let other = roundtrip_server::start(Config::default()).await.unwrap();
    let target = format!("{}/echo", other.base_url());

    let echoed: Value = harness
        .client
        .get("/redirect")
        .query("to", &target)
        .query("status", "307")
        .bearer_auth("cross-origin-secret")
        .header("cookie", "session=cross-origin-cookie")
        .header("x-trace", "kept")
        .await
        .unwrap()
        .json()
        .unwrap();

    assert_eq!(echoed["path"], "/echo");
    assert_eq!(echoed["headers"]["x-trace"], "kept");
    assert!(echoed["headers"].get("authorization").is_none(), "{echoed}");
    assert!(echoed["headers"].get("cookie").is_none(), "{echoed}");
}

#[tokio::test]
async fn test_credentials_are_kept_on_a_same_origin_redirect() {
    let harness = Harness::start().await;

    let echoed: Value = harness
        .client
        .get("/redirect")
        .query("to", "/echo")
        .bearer_auth("same-origin-token")
        .await
        .unwrap()
        .json()
        .unwrap();

    assert_eq!(
        echoed["headers"]["authorization"],
        "Bearer same-origin-token"
    );
}

#[tokio::test]
async fn test_a_redirect_to_plain_http_elsewhere_is_refused() {
    let harness = Harness::start().await;

    let error = harness
        .client
        .get("/redirect")
        .query("to", "http://api.example.com/steal")
        .await
        .unwrap_err();

    assert!(matches!(error, Error::InsecureTransport { ref host } if host == "api.example.com"));
}

#[tokio::test]
async fn test_debug_output_hides_credentials() {
    let client = Client::builder("https://api.example.com/v1?key=base-secret")
        .default_header("authorization", "Bearer default-secret")
        .build()
        .unwrap();
    let request = client
        .get("/todos?token=query-secret")
        .bearer_auth("request-secret")
        .header("x-api-key", "key-secret");

    let shown = format!("{client:?} {request:?}");

    for secret in [
        "base-secret",
        "default-secret",
        "query-secret",
        "request-secret",
        "key-secret",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked in {shown}");
    }
    assert!(shown.contains("api.example.com/v1"), "{shown}");
}
