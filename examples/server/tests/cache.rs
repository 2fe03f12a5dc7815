//! The cacheable resources, end to end: a real server on loopback and a real
//! HTTP client that shows responses exactly as sent (no decompression, no
//! redirects, no cache). Every test starts its own server.

use std::io;
use std::sync::Once;
use std::time::{Duration, Instant};

use reqwest::header;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use roundtrip_server::{Config, RunningServer};
use serde_json::{Value, json};

const LAST_MODIFIED: &str = "Wed, 21 Oct 2026 07:28:00 GMT";

/// A running server with a raw client pointed at it.
struct TestServer {
    server: RunningServer,
    client: Client,
}

impl TestServer {
    async fn start() -> Self {
        install_crypto_provider();
        let server = roundtrip_server::start(Config::default())
            .await
            .expect("server starts");
        let client = Client::builder()
            .no_gzip()
            .no_brotli()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds");

        Self { server, client }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    async fn send(&self, request: RequestBuilder) -> Response {
        request.send().await.expect("request succeeds")
    }

    async fn get(&self, path: &str) -> Response {
        self.send(self.request(Method::GET, path)).await
    }

    /// Sends a `GET` with one extra header.
    async fn get_with(&self, path: &str, name: &str, value: &str) -> Response {
        self.send(self.request(Method::GET, path).header(name, value))
            .await
    }

    async fn control(&self, method: Method, path: &str, body: Option<&Value>) -> StatusCode {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }

        self.send(request).await.status()
    }

    /// Defines the resource `name`, checking that the server accepted it.
    async fn define(&self, name: &str, definition: Value) {
        let path = format!("/_control/cache/resources/{name}");
        let status = self.control(Method::PUT, &path, Some(&definition)).await;

        assert_eq!(status, StatusCode::NO_CONTENT, "definition {definition}");
    }

    async fn add_fault(&self, rule: Value) {
        let status = self
            .control(Method::POST, "/_control/faults", Some(&rule))
            .await;

        assert_eq!(status, StatusCode::NO_CONTENT, "fault rule {rule}");
    }

    async fn stats(&self) -> Value {
        read_json(self.get("/_control/stats").await).await
    }

    /// The counters of one resource, all zero when it was never requested.
    async fn cache_stats(&self, name: &str) -> Value {
        let stats = self.stats().await;

        match &stats["cache"][name] {
            Value::Null => json!({ "requests": 0, "conditional": 0, "not_modified": 0, "full": 0 }),
            counters => counters.clone(),
        }
    }
}

fn install_crypto_provider() {
    static INSTALL: Once = Once::new();

    INSTALL.call_once(|| {
        // reqwest is built without a default provider; plain HTTP needs none,
        // but building a client still looks for one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

async fn read_json(response: Response) -> Value {
    let body = response.bytes().await.expect("body arrives");

    serde_json::from_slice(&body).expect("body is JSON")
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().expect("header is text"))
}

/// A resource with every validator and freshness header a cache looks at.
fn versioned(version: u32) -> Value {
    json!({
        "body": format!("{{\"version\": {version}}}"),
        "content_type": "application/json",
        "headers": {
            "cache-control": "max-age=60",
            "etag": format!("\"v{version}\""),
            "last-modified": LAST_MODIFIED,
            "expires": "Thu, 22 Oct 2026 07:28:00 GMT",
            "vary": "accept-language",
            "x-version": version.to_string(),
        },
    })
}

fn is_connection_reset(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);

    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::ConnectionReset
        {
            return true;
        }
        source = err.source();
    }

    false
}

mod serving {
    use super::*;

    #[tokio::test]
    async fn test_a_defined_resource_is_served_as_defined() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;

        let response = server.get("/cache/resources/r").await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "content-type"), Some("application/json"));
        assert_eq!(header(&response, "cache-control"), Some("max-age=60"));
        assert_eq!(header(&response, "etag"), Some("\"v1\""));
        assert_eq!(header(&response, "last-modified"), Some(LAST_MODIFIED));
        assert_eq!(
            header(&response, "expires"),
            Some("Thu, 22 Oct 2026 07:28:00 GMT")
        );
        assert_eq!(header(&response, "vary"), Some("accept-language"));
        assert_eq!(header(&response, "x-version"), Some("1"));
        assert_eq!(header(&response, "content-length"), Some("14"));
        assert_eq!(response.text().await.unwrap(), r#"{"version": 1}"#);
    }

    #[tokio::test]
    async fn test_redefining_publishes_a_new_version() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;
        let first = server.get("/cache/resources/r").await;

        server.define("r", versioned(2)).await;
        let second = server.get("/cache/resources/r").await;

        assert_eq!(header(&first, "etag"), Some("\"v1\""));
        assert_eq!(header(&second, "etag"), Some("\"v2\""));
        assert_eq!(second.text().await.unwrap(), r#"{"version": 2}"#);
    }

    #[tokio::test]
    async fn test_scripted_statuses_and_minimal_definitions() {
        let server = TestServer::start().await;
        server
            .define(
                "moved",
                json!({ "status": 301, "headers": { "location": "/cache/resources/r" } }),
            )
            .await;
        server
            .define("gone", json!({ "status": 410, "body": "gone" }))
            .await;
        server.define("empty", json!({})).await;

        let moved = server.get("/cache/resources/moved").await;
        let gone = server.get("/cache/resources/gone").await;
        let empty = server.get("/cache/resources/empty").await;

        assert_eq!(moved.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(header(&moved, "location"), Some("/cache/resources/r"));
        assert_eq!(gone.status(), StatusCode::GONE);
        assert_eq!(gone.text().await.unwrap(), "gone");
        assert_eq!(empty.status(), StatusCode::OK);
        assert_eq!(header(&empty, "content-type"), None);
        assert_eq!(empty.text().await.unwrap(), "");
    }

    #[tokio::test]
    async fn test_unknown_resources_are_404_problems() {
        let server = TestServer::start().await;

        let response = server.get("/cache/resources/nothing").await;

        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            header(&response, "content-type"),
            Some("application/problem+json")
        );
        let problem = read_json(response).await;
        assert_eq!(problem["status"], 404);
        assert_eq!(problem["instance"], "/cache/resources/nothing");
    }

    #[tokio::test]
    async fn test_placeholders_take_the_request_headers() {
        let server = TestServer::start().await;
        server
            .define(
                "greeting",
                json!({
                    "body": "lang={header:accept-language};missing={header:x-none}",
                    "content_type": "text/plain",
                    "headers": { "vary": "accept-language", "cache-control": "max-age=60" },
                }),
            )
            .await;

        let french = server
            .get_with("/cache/resources/greeting", "Accept-Language", "fr")
            .await;
        let german = server
            .get_with("/cache/resources/greeting", "Accept-Language", "de")
            .await;
        let none = server.get("/cache/resources/greeting").await;

        assert_eq!(french.text().await.unwrap(), "lang=fr;missing=");
        assert_eq!(german.text().await.unwrap(), "lang=de;missing=");
        assert_eq!(none.text().await.unwrap(), "lang=;missing=");
    }

    #[tokio::test]
    async fn test_unknown_header_names_in_placeholders_are_empty() {
        let server = TestServer::start().await;
        server
            .define("r", json!({ "body": "[{header:not a name}]" }))
            .await;

        let response = server.get("/cache/resources/r").await;

        assert_eq!(response.text().await.unwrap(), "[]");
    }

    #[tokio::test]
    async fn test_head_sends_the_headers_without_the_body() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;

        let response = server
            .send(server.request(Method::HEAD, "/cache/resources/r"))
            .await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "etag"), Some("\"v1\""));
        assert_eq!(header(&response, "content-type"), Some("application/json"));
        assert_eq!(header(&response, "content-length"), Some("14"));
        assert!(response.bytes().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn test_responses_are_never_compressed() {
        let server = TestServer::start().await;
        let body = "a body that would be well worth compressing, ".repeat(20);
        server
            .define("big", json!({ "body": body, "content_type": "text/plain" }))
            .await;

        let response = server
            .get_with("/cache/resources/big", "Accept-Encoding", "gzip, br")
            .await;

        assert!(header(&response, "content-encoding").is_none());
        assert_eq!(response.text().await.unwrap(), body);
    }
}

mod definitions {
    use super::*;

    #[tokio::test]
    async fn test_invalid_definitions_are_refused() {
        let server = TestServer::start().await;
        let path = "/_control/cache/resources/r";

        let invalid = server
            .control(
                Method::PUT,
                path,
                Some(&json!({ "status": 99, "headers": { "transfer-encoding": "chunked" } })),
            )
            .await;
        let unknown_field = server
            .control(Method::PUT, path, Some(&json!({ "bdy": "typo" })))
            .await;
        let not_json = server
            .send(server.request(Method::PUT, path).body("nope"))
            .await;

        assert_eq!(invalid, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(unknown_field, StatusCode::BAD_REQUEST);
        assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            server.get("/cache/resources/r").await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn test_delete_removes_every_resource() {
        let server = TestServer::start().await;
        server.define("a", versioned(1)).await;
        server.define("b", versioned(1)).await;

        let cleared = server
            .control(Method::DELETE, "/_control/cache/resources", None)
            .await;

        assert_eq!(cleared, StatusCode::NO_CONTENT);
        for path in ["/cache/resources/a", "/cache/resources/b"] {
            assert_eq!(server.get(path).await.status(), StatusCode::NOT_FOUND);
        }
    }
}

mod conditional {
    use super::*;

    /// Checks a 304: no body, no content type, every other header of the resource.
    async fn assert_not_modified(response: Response) {
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&response, "etag"), Some("\"v1\""));
        assert_eq!(header(&response, "cache-control"), Some("max-age=60"));
        assert_eq!(
            header(&response, "expires"),
            Some("Thu, 22 Oct 2026 07:28:00 GMT")
        );
        assert_eq!(header(&response, "vary"), Some("accept-language"));
        assert_eq!(header(&response, "last-modified"), Some(LAST_MODIFIED));
        assert_eq!(header(&response, "x-version"), Some("1"));
        assert!(header(&response, "content-type").is_none());
        assert!(header(&response, "content-length").is_none());
        assert!(response.bytes().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn test_if_none_match_gives_304_by_weak_comparison() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;

        for tag in [r#""v1""#, r#"W/"v1""#, r#""v0", "v1""#, "*"] {
            let response = server
                .get_with("/cache/resources/r", "If-None-Match", tag)
                .await;

            assert_not_modified(response).await;
        }
    }

    #[tokio::test]
    async fn test_a_weak_etag_matches_a_strong_tag() {
        let server = TestServer::start().await;
        server
            .define(
                "w",
                json!({ "body": "x", "headers": { "etag": "W/\"w1\"" } }),
            )
            .await;

        let response = server
            .get_with("/cache/resources/w", "If-None-Match", r#""w1""#)
            .await;

        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&response, "etag"), Some("W/\"w1\""));
    }

    #[tokio::test]
    async fn test_a_new_version_answers_in_full() {
        let server = TestServer::start().await;
        server.define("r", versioned(2)).await;

        let response = server
            .get_with("/cache/resources/r", "If-None-Match", r#""v1""#)
            .await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "etag"), Some("\"v2\""));
        assert_eq!(response.text().await.unwrap(), r#"{"version": 2}"#);
    }

    #[tokio::test]
    async fn test_if_modified_since_gives_304_from_last_modified_on() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;
        let path = "/cache/resources/r";

        let same = server
            .get_with(path, "If-Modified-Since", LAST_MODIFIED)
            .await;
        let later = server
            .get_with(path, "If-Modified-Since", "Thu, 22 Oct 2026 00:00:00 GMT")
            .await;
        let earlier = server
            .get_with(path, "If-Modified-Since", "Tue, 20 Oct 2026 07:28:00 GMT")
            .await;
        let garbage = server
            .get_with(path, "If-Modified-Since", "last tuesday")
            .await;

        assert_not_modified(same).await;
        assert_not_modified(later).await;
        assert_eq!(earlier.status(), StatusCode::OK);
        assert_eq!(garbage.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn test_if_none_match_takes_precedence_over_if_modified_since() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;

        let response = server
            .send(
                server
                    .request(Method::GET, "/cache/resources/r")
                    .header("If-None-Match", r#""v0""#)
                    .header("If-Modified-Since", LAST_MODIFIED),
            )
            .await;

        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn test_head_is_conditional_too() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;

        let response = server
            .send(
                server
                    .request(Method::HEAD, "/cache/resources/r")
                    .header("If-None-Match", r#""v1""#),
            )
            .await;

        assert_not_modified(response).await;
    }

    #[tokio::test]
    async fn test_304_over_http2() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;
        let client = Client::builder()
            .http2_prior_knowledge()
            .build()
            .expect("client builds");

        let response = client
            .get(server.url("/cache/resources/r"))
            .header("If-None-Match", r#""v1""#)
            .send()
            .await
            .expect("request succeeds");

        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_not_modified(response).await;
    }

    #[tokio::test]
    async fn test_unsafe_methods_are_never_304() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;

        let response = server
            .send(
                server
                    .request(Method::POST, "/cache/resources/r")
                    .header("If-None-Match", r#""v1""#),
            )
            .await;

        assert_eq!(response.status(), StatusCode::OK);
    }
}

mod unsafe_methods {
    use super::*;

    #[tokio::test]
    async fn test_unsafe_methods_answer_and_change_nothing() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;

        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let response = server
                .send(
                    server
                        .request(method.clone(), "/cache/resources/r")
                        .body("ignored"),
                )
                .await;

            assert_eq!(response.status(), StatusCode::OK, "{method}");
            assert_eq!(header(&response, "content-type"), Some("application/json"));
            assert_eq!(read_json(response).await, json!({ "updated": "r" }));
        }
        let served = server.get("/cache/resources/r").await;
        assert_eq!(header(&served, "etag"), Some("\"v1\""));
    }

    #[tokio::test]
    async fn test_location_headers_are_echoed_from_the_query() {
        let server = TestServer::start().await;

        let path = "/cache/resources/list\
            ?location=/cache/resources/item&content_location=/cache/resources/copy";

        let response = server.send(server.request(Method::POST, path)).await;
        let plain = server
            .send(server.request(Method::DELETE, "/cache/resources/list"))
            .await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "location"), Some("/cache/resources/item"));
        assert_eq!(
            header(&response, "content-location"),
            Some("/cache/resources/copy")
        );
        assert!(header(&plain, "location").is_none());
        assert!(header(&plain, "content-location").is_none());
    }

    #[tokio::test]
    async fn test_status_parameter_changes_the_status() {
        let server = TestServer::start().await;

        let failed = server
            .send(server.request(Method::PUT, "/cache/resources/r?status=500&location=/x"))
            .await;
        let bad = server
            .send(server.request(Method::PUT, "/cache/resources/r?status=42"))
            .await;

        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(header(&failed, "location"), Some("/x"));
        assert_eq!(read_json(failed).await, json!({ "updated": "r" }));
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    }
}

mod counters {
    use super::*;

    #[tokio::test]
    async fn test_requests_are_counted_per_name_and_outcome() {
        let server = TestServer::start().await;
        server.define("a", versioned(1)).await;
        server.define("b", versioned(1)).await;

        server.get("/cache/resources/a").await;
        server
            .get_with("/cache/resources/a", "If-None-Match", r#""v1""#)
            .await;
        server
            .get_with("/cache/resources/a", "If-None-Match", r#""v0""#)
            .await;
        server
            .get_with("/cache/resources/a", "If-Modified-Since", LAST_MODIFIED)
            .await;
        server
            .send(server.request(Method::HEAD, "/cache/resources/a"))
            .await;
        server
            .send(server.request(Method::POST, "/cache/resources/a"))
            .await;
        server.get("/cache/resources/missing").await;
        let stats = server.stats().await;

        assert_eq!(
            stats["cache"],
            json!({
                "a": { "requests": 6, "conditional": 3, "not_modified": 2, "full": 2 },
                "missing": { "requests": 1, "conditional": 0, "not_modified": 0, "full": 0 },
            })
        );
        assert_eq!(stats["by_route"]["GET /cache/resources/a"], 4);
    }

    #[tokio::test]
    async fn test_reset_removes_resources_and_counters() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;
        server.get("/cache/resources/r").await;

        let reset = server.control(Method::POST, "/_control/reset", None).await;
        let stats = server.stats().await;
        let after = server.get("/cache/resources/r").await;

        assert_eq!(reset, StatusCode::NO_CONTENT);
        assert_eq!(stats["cache"], json!({}));
        assert_eq!(after.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn test_control_requests_are_not_counted() {
        let server = TestServer::start().await;

        server.define("r", versioned(1)).await;
        let stats = server.stats().await;

        assert_eq!(stats["cache"], json!({}));
        assert_eq!(stats["total"], 0);
    }
}

mod faults {
    use super::*;

    #[tokio::test]
    async fn test_status_fault_answers_instead_and_is_counted() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;
        server
            .add_fault(json!({ "path": "/cache/resources/r", "count": 1, "kind": "status" }))
            .await;

        let faulted = server
            .get_with("/cache/resources/r", "If-None-Match", r#""v1""#)
            .await;
        let next = server.get("/cache/resources/r").await;

        assert_eq!(faulted.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(read_json(faulted).await["type"], "/problems/injected-fault");
        assert_eq!(next.status(), StatusCode::OK);
        assert_eq!(
            server.cache_stats("r").await,
            json!({ "requests": 2, "conditional": 1, "not_modified": 0, "full": 1 })
        );
    }

    #[tokio::test]
    async fn test_reset_fault_drops_the_connection() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;
        server
            .add_fault(json!({ "path": "/cache/", "count": 1, "kind": "reset" }))
            .await;

        let result = server
            .request(Method::GET, "/cache/resources/r")
            .send()
            .await;

        let err = result.expect_err("a reset connection yields no response");
        assert!(is_connection_reset(&err), "expected a reset, got {err:?}");
        assert_eq!(server.cache_stats("r").await["requests"], 1);
        assert_eq!(server.cache_stats("r").await["full"], 0);
    }

    #[tokio::test]
    async fn test_delay_fault_waits_then_serves() {
        let server = TestServer::start().await;
        server.define("r", versioned(1)).await;
        server
            .add_fault(json!({
                "path": "/cache/resources/r", "method": "GET", "count": 1,
                "kind": "delay", "delay_ms": 300,
            }))
            .await;

        let started = Instant::now();
        let response = server.get("/cache/resources/r").await;
        let took = started.elapsed();

        assert_eq!(response.status(), StatusCode::OK);
        assert!(took >= Duration::from_millis(300), "took {took:?}");
    }
}
