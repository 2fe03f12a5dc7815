//! The HTTP cache against the reference server's scripted resources: one test per rule of
//! RFC 9111 that the cache applies, each checking the server's request counters to prove when
//! the network was or was not used.

use std::sync::Arc;
use std::time::Duration;

use roundtrip::auth::{MemoryStore, OAuthConfig};
use roundtrip::{CachePolicy, CacheSource, Client, Error, RetryPolicy};
use serde_json::{Value, json};

use crate::support::Harness;

const T0: &str = "Wed, 21 Oct 2026 07:28:00 GMT";

async fn define(harness: &Harness, name: &str, body: &str, headers: Value) {
    let resource = json!({ "body": body, "content_type": "text/plain", "headers": headers });
    harness
        .control
        .put(&format!("/_control/cache/resources/{name}"))
        .json(&resource)
        .send()
        .await
        .expect("resource defined");
}

async fn counts(harness: &Harness, name: &str) -> Value {
    harness.stats().await["cache"][name].clone()
}

async fn requests(harness: &Harness, name: &str) -> u64 {
    counts(harness, name).await["requests"]
        .as_u64()
        .unwrap_or(0)
}

fn path(name: &str) -> String {
    format!("/cache/resources/{name}")
}

#[tokio::test]
async fn test_a_fresh_response_is_served_without_the_network() {
    let harness = Harness::start().await;
    define(
        &harness,
        "fresh",
        "v1",
        json!({ "cache-control": "max-age=60" }),
    )
    .await;

    let first = harness.client.get(&path("fresh")).await.unwrap();
    let second = harness.client.get(&path("fresh")).await.unwrap();

    assert_eq!(first.cache().source, CacheSource::Network);
    assert_eq!(second.cache().source, CacheSource::Cache);
    assert!(!second.cache().stale);
    assert_eq!(second.attempts(), 0);
    assert_eq!(second.text().unwrap(), "v1");
    assert!(second.header("age").is_some());
    assert_eq!(requests(&harness, "fresh").await, 1);
}

#[tokio::test]
async fn test_a_stale_response_is_revalidated_with_its_etag_and_a_304_refreshes_it() {
    let harness = Harness::start().await;
    define(
        &harness,
        "etag",
        "v1",
        json!({ "cache-control": "max-age=0", "etag": "\"v1\"", "x-version": "1" }),
    )
    .await;
    harness.client.get(&path("etag")).await.unwrap();
    define(
        &harness,
        "etag",
        "v1",
        json!({ "cache-control": "max-age=60", "etag": "\"v1\"", "x-version": "2" }),
    )
    .await;

    let revalidated = harness.client.get(&path("etag")).await.unwrap();
    let then_fresh = harness.client.get(&path("etag")).await.unwrap();

    assert!(revalidated.cache().revalidated);
    assert_eq!(revalidated.cache().source, CacheSource::Cache);
    assert_eq!(revalidated.status(), 200);
    assert_eq!(revalidated.text().unwrap(), "v1");
    assert_eq!(
        revalidated.header("x-version"),
        Some("2"),
        "the 304's headers were not kept"
    );
    assert_eq!(then_fresh.cache().source, CacheSource::Cache);
    assert!(!then_fresh.cache().revalidated);
    let counts = counts(&harness, "etag").await;
    assert_eq!(
        (counts["requests"].as_u64(), counts["not_modified"].as_u64()),
        (Some(2), Some(1))
    );
}

#[tokio::test]
async fn test_last_modified_is_used_when_there_is_no_etag() {
    let harness = Harness::start().await;
    define(
        &harness,
        "dated",
        "v1",
        json!({ "cache-control": "no-cache", "last-modified": T0 }),
    )
    .await;
    harness.client.get(&path("dated")).await.unwrap();

    let second = harness.client.get(&path("dated")).await.unwrap();

    assert!(second.cache().revalidated);
    assert_eq!(counts(&harness, "dated").await["conditional"], 1);
}

#[tokio::test]
async fn test_a_changed_resource_replaces_the_stored_one() {
    let harness = Harness::start().await;
    define(
        &harness,
        "changing",
        "v1",
        json!({ "cache-control": "max-age=0", "etag": "\"v1\"" }),
    )
    .await;
    harness.client.get(&path("changing")).await.unwrap();
    define(
        &harness,
        "changing",
        "v2",
        json!({ "cache-control": "max-age=60", "etag": "\"v2\"" }),
    )
    .await;

    let changed = harness.client.get(&path("changing")).await.unwrap();
    let stored = harness.client.get(&path("changing")).await.unwrap();

    assert_eq!(changed.cache().source, CacheSource::Network);
    assert_eq!(changed.text().unwrap(), "v2");
    assert_eq!(
        (stored.cache().source, stored.text().unwrap()),
        (CacheSource::Cache, "v2")
    );
}

#[tokio::test]
async fn test_no_store_is_never_stored() {
    let harness = Harness::start().await;
    define(
        &harness,
        "secret",
        "v1",
        json!({ "cache-control": "no-store, max-age=60" }),
    )
    .await;

    harness.client.get(&path("secret")).await.unwrap();
    let second = harness.client.get(&path("secret")).await.unwrap();

    assert_eq!(second.cache().source, CacheSource::Network);
    assert_eq!(requests(&harness, "secret").await, 2);
}

#[tokio::test]
async fn test_request_no_store_and_no_cache_directives() {
    let harness = Harness::start().await;
    define(
        &harness,
        "directed",
        "v1",
        json!({ "cache-control": "max-age=60", "etag": "\"d\"" }),
    )
    .await;
    harness
        .client
        .get(&path("directed"))
        .header("cache-control", "no-store")
        .await
        .unwrap();
    assert_eq!(requests(&harness, "directed").await, 1);

    let stored = harness.client.get(&path("directed")).await.unwrap();
    assert_eq!(
        stored.cache().source,
        CacheSource::Network,
        "a no-store request stored its response"
    );
    let checked = harness
        .client
        .get(&path("directed"))
        .header("cache-control", "no-cache")
        .await
        .unwrap();

    assert!(checked.cache().revalidated);
    assert_eq!(counts(&harness, "directed").await["conditional"], 1);
}

#[tokio::test]
async fn test_request_max_age_and_min_fresh_limit_what_is_acceptable() {
    let harness = Harness::start().await;
    define(
        &harness,
        "aged",
        "v1",
        json!({ "cache-control": "max-age=60", "age": "30", "etag": "\"a\"" }),
    )
    .await;
    harness.client.get(&path("aged")).await.unwrap();

    let within = harness
        .client
        .get(&path("aged"))
        .header("cache-control", "max-age=45")
        .await
        .unwrap();
    let too_old = harness
        .client
        .get(&path("aged"))
        .header("cache-control", "max-age=10")
        .await
        .unwrap();
    let not_fresh_enough = harness
        .client
        .get(&path("aged"))
        .header("cache-control", "min-fresh=50")
        .await
        .unwrap();

    assert_eq!(within.cache().source, CacheSource::Cache);
    assert!(!within.cache().revalidated);
    assert!(too_old.cache().revalidated);
    assert!(not_fresh_enough.cache().revalidated);
}

#[tokio::test]
async fn test_expires_and_date_give_freshness() {
    let harness = Harness::start().await;
    let now = std::time::SystemTime::now();
    let date = httpdate::fmt_http_date(now);
    let expires = httpdate::fmt_http_date(now + Duration::from_secs(120));
    let expired = httpdate::fmt_http_date(now - Duration::from_secs(120));
    define(
        &harness,
        "expires",
        "v1",
        json!({ "date": date, "expires": expires }),
    )
    .await;
    define(
        &harness,
        "expired",
        "v1",
        json!({ "date": date, "expires": expired, "etag": "\"e\"" }),
    )
    .await;

    for name in ["expires", "expired"] {
        harness.client.get(&path(name)).await.unwrap();
        harness.client.get(&path(name)).await.unwrap();
    }

    assert_eq!(requests(&harness, "expires").await, 1);
    assert_eq!(requests(&harness, "expired").await, 2);
}

#[tokio::test]
async fn test_heuristic_freshness_from_last_modified() {
    let harness = Harness::start().await;
    // Modified 10 days ago: a tenth of that, capped at one day, is fresh.
    let modified =
        httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(864_000));
    define(
        &harness,
        "heuristic",
        "v1",
        json!({ "last-modified": modified }),
    )
    .await;

    harness.client.get(&path("heuristic")).await.unwrap();
    let second = harness.client.get(&path("heuristic")).await.unwrap();

    assert_eq!(second.cache().source, CacheSource::Cache);
    assert_eq!(requests(&harness, "heuristic").await, 1);
}

#[tokio::test]
async fn test_responses_vary_on_the_named_request_headers() {
    let harness = Harness::start().await;
    define(
        &harness,
        "varied",
        "hello {header:accept-language}",
        json!({ "cache-control": "max-age=60", "vary": "Accept-Language" }),
    )
    .await;
    let get = |language: &'static str| {
        harness
            .client
            .get(&path("varied"))
            .header("accept-language", language)
            .send()
    };

    assert_eq!(get("en").await.unwrap().text().unwrap(), "hello en");
    assert_eq!(get("de").await.unwrap().text().unwrap(), "hello de");
    let english = get("en").await.unwrap();
    let german = get("de").await.unwrap();

    assert_eq!(
        (english.cache().source, english.text().unwrap()),
        (CacheSource::Cache, "hello en")
    );
    assert_eq!(
        (german.cache().source, german.text().unwrap()),
        (CacheSource::Cache, "hello de")
    );
    assert_eq!(requests(&harness, "varied").await, 2);
}

#[tokio::test]
async fn test_vary_star_never_matches() {
    let harness = Harness::start().await;
    define(
        &harness,
        "star",
        "v1",
        json!({ "cache-control": "max-age=60", "vary": "*" }),
    )
    .await;

    harness.client.get(&path("star")).await.unwrap();
    harness.client.get(&path("star")).await.unwrap();

    assert_eq!(requests(&harness, "star").await, 2);
}

#[tokio::test]
async fn test_must_revalidate_and_no_cache_are_never_served_stale_offline() {
    let harness = Harness::start().await;
    define(
        &harness,
        "strict",
        "v1",
        json!({ "cache-control": "max-age=0, must-revalidate" }),
    )
    .await;
    define(
        &harness,
        "checked",
        "v1",
        json!({ "cache-control": "no-cache" }),
    )
    .await;
    define(
        &harness,
        "lenient",
        "v1",
        json!({ "cache-control": "max-age=0" }),
    )
    .await;
    for name in ["strict", "checked", "lenient"] {
        harness.client.get(&path(name)).await.unwrap();
    }
    harness.client.set_online(false);

    let strict = harness.client.get(&path("strict")).await.unwrap_err();
    let checked = harness.client.get(&path("checked")).await.unwrap_err();
    let lenient = harness.client.get(&path("lenient")).await.unwrap();

    assert!(matches!(strict, Error::Offline), "{strict:?}");
    assert!(matches!(checked, Error::Offline), "{checked:?}");
    assert!(lenient.cache().stale);
    assert_eq!(lenient.cache().source, CacheSource::Cache);
    assert_eq!(lenient.text().unwrap(), "v1");
}

#[tokio::test]
async fn test_stale_content_is_served_when_the_server_cannot_be_reached() {
    let harness = Harness::with_client(|builder| builder.retry_policy(RetryPolicy::never())).await;
    define(
        &harness,
        "fallback",
        "v1",
        json!({ "cache-control": "max-age=0", "etag": "\"f\"" }),
    )
    .await;
    harness.client.get(&path("fallback")).await.unwrap();
    harness
        .fault(json!({ "path": path("fallback"), "count": 1, "kind": "reset" }))
        .await;

    let served = harness.client.get(&path("fallback")).await.unwrap();

    assert!(served.cache().stale);
    assert_eq!(served.text().unwrap(), "v1");
}

#[tokio::test]
async fn test_stale_if_error_covers_server_errors_within_its_window() {
    let harness = Harness::with_client(|builder| builder.retry_policy(RetryPolicy::never())).await;
    define(
        &harness,
        "sie",
        "v1",
        json!({ "cache-control": "max-age=0, stale-if-error=600" }),
    )
    .await;
    define(
        &harness,
        "plain",
        "v1",
        json!({ "cache-control": "max-age=0" }),
    )
    .await;
    for name in ["sie", "plain"] {
        harness.client.get(&path(name)).await.unwrap();
        harness
            .fault(json!({ "path": path(name), "count": 1, "kind": "status", "status": 503 }))
            .await;
    }

    let covered = harness.client.get(&path("sie")).await.unwrap();
    let uncovered = harness.client.get(&path("plain")).await.unwrap_err();

    assert!(covered.cache().stale);
    assert_eq!(uncovered.status(), Some(503));
}

#[tokio::test]
async fn test_stale_while_revalidate_serves_at_once_and_refreshes_behind() {
    let harness = Harness::start().await;
    define(
        &harness,
        "swr",
        "v1",
        json!({ "cache-control": "max-age=0, stale-while-revalidate=600" }),
    )
    .await;
    harness.client.get(&path("swr")).await.unwrap();
    define(
        &harness,
        "swr",
        "v2",
        json!({ "cache-control": "max-age=600" }),
    )
    .await;

    let immediate = harness.client.get(&path("swr")).await.unwrap();
    harness
        .wait_for_stats(|stats| stats["cache"]["swr"]["requests"] == 2)
        .await;
    let mut refreshed = harness.client.get(&path("swr")).await.unwrap();
    for _ in 0..50 {
        if refreshed.text().unwrap() == "v2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        refreshed = harness.client.get(&path("swr")).await.unwrap();
    }

    assert_eq!(
        (immediate.text().unwrap(), immediate.cache().stale),
        ("v1", true)
    );
    assert_eq!(
        (refreshed.text().unwrap(), refreshed.cache().source),
        ("v2", CacheSource::Cache)
    );
    assert_eq!(requests(&harness, "swr").await, 2);
}

#[tokio::test]
async fn test_immutable_is_not_revalidated_while_fresh_even_when_asked() {
    let harness = Harness::start().await;
    define(
        &harness,
        "frozen",
        "v1",
        json!({ "cache-control": "max-age=600, immutable", "etag": "\"i\"" }),
    )
    .await;
    define(
        &harness,
        "mutable",
        "v1",
        json!({ "cache-control": "max-age=600", "etag": "\"m\"" }),
    )
    .await;
    for name in ["frozen", "mutable"] {
        harness.client.get(&path(name)).await.unwrap();
        harness
            .client
            .get(&path(name))
            .cache_policy(CachePolicy::AlwaysRevalidate)
            .await
            .unwrap();
    }

    assert_eq!(requests(&harness, "frozen").await, 1);
    assert_eq!(requests(&harness, "mutable").await, 2);
}

#[tokio::test]
async fn test_cache_only_and_bypass_policies() {
    let harness = Harness::start().await;
    define(
        &harness,
        "policy",
        "v1",
        json!({ "cache-control": "max-age=0" }),
    )
    .await;

    let missing = harness
        .client
        .get(&path("policy"))
        .cache_policy(CachePolicy::CacheOnly)
        .await;
    assert!(matches!(missing, Err(Error::NotCached)));
    harness.client.get(&path("policy")).await.unwrap();
    let offline_read = harness
        .client
        .get(&path("policy"))
        .cache_policy(CachePolicy::CacheOnly)
        .await
        .unwrap();
    let bypassed = harness
        .client
        .get(&path("policy"))
        .cache_policy(CachePolicy::Bypass)
        .await
        .unwrap();

    assert_eq!(
        (offline_read.cache().source, offline_read.cache().stale),
        (CacheSource::Cache, true)
    );
    assert_eq!(bypassed.cache().source, CacheSource::Network);
    assert_eq!(requests(&harness, "policy").await, 2);
}

#[tokio::test]
async fn test_unsafe_methods_invalidate_the_target_location_and_content_location() {
    let harness = Harness::start().await;
    for name in ["list", "item", "described", "other"] {
        define(
            &harness,
            name,
            name,
            json!({ "cache-control": "max-age=600" }),
        )
        .await;
        harness.client.get(&path(name)).await.unwrap();
    }

    harness
        .client
        .post(&path("list"))
        .body("x", "text/plain")
        .await
        .unwrap();
    // The answer names another resource in Location. (This request's own target, with its
    // query, is a URI of its own, distinct from every stored one.)
    harness
        .client
        .put(&path("writer"))
        .query("location", &path("item"))
        .query("content_location", &path("described"))
        .body("x", "text/plain")
        .await
        .unwrap();
    for name in ["list", "item", "described", "other"] {
        harness.client.get(&path(name)).await.unwrap();
    }

    assert_eq!(
        requests(&harness, "list").await,
        3,
        "the target was not invalidated"
    );
    assert_eq!(
        requests(&harness, "item").await,
        2,
        "Location was not invalidated"
    );
    assert_eq!(
        requests(&harness, "described").await,
        2,
        "Content-Location was not invalidated"
    );
    assert_eq!(
        requests(&harness, "other").await,
        1,
        "an unrelated response was invalidated"
    );
}

#[tokio::test]
async fn test_a_failed_unsafe_request_invalidates_nothing() {
    let harness = Harness::with_client(|builder| builder.retry_policy(RetryPolicy::never())).await;
    define(
        &harness,
        "kept",
        "v1",
        json!({ "cache-control": "max-age=600" }),
    )
    .await;
    harness.client.get(&path("kept")).await.unwrap();

    let failed = harness
        .client
        .delete(&path("kept"))
        .query("status", "500")
        .await;
    harness.client.get(&path("kept")).await.unwrap();

    assert_eq!(failed.unwrap_err().status(), Some(500));
    assert_eq!(requests(&harness, "kept").await, 2);
}

#[tokio::test]
async fn test_head_is_answered_from_a_stored_get() {
    let harness = Harness::start().await;
    define(
        &harness,
        "headed",
        "body",
        json!({ "cache-control": "max-age=600", "x-kind": "k" }),
    )
    .await;
    harness.client.get(&path("headed")).await.unwrap();

    let head = harness.client.head(&path("headed")).await.unwrap();

    assert_eq!(head.cache().source, CacheSource::Cache);
    assert!(head.bytes().is_empty());
    assert_eq!(head.header("x-kind"), Some("k"));
    assert_eq!(requests(&harness, "headed").await, 1);
}

#[tokio::test]
async fn test_storable_statuses() {
    let harness = Harness::start().await;
    for (name, status) in [("partial", 203), ("created", 201)] {
        let resource =
            json!({ "body": name, "status": status, "headers": { "last-modified": T0 } });
        harness
            .control
            .put(&format!("/_control/cache/resources/{name}"))
            .json(&resource)
            .await
            .unwrap();
    }

    for name in ["partial", "created"] {
        harness.client.get(&path(name)).await.unwrap();
        harness.client.get(&path(name)).await.unwrap();
    }

    // 203 is cacheable by default (heuristically fresh from Last-Modified); 201 is not.
    assert_eq!(requests(&harness, "partial").await, 1);
    assert_eq!(requests(&harness, "created").await, 2);
}

#[tokio::test]
async fn test_the_cache_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let harness =
        Harness::with_client(|builder| builder.storage_dir(dir.path().join("client"))).await;
    define(
        &harness,
        "durable",
        "v1",
        json!({ "cache-control": "max-age=600" }),
    )
    .await;
    harness.client.get(&path("durable")).await.unwrap();
    drop(harness.client.clone());

    let reopened = Client::builder(harness.server.base_url())
        .storage_dir(dir.path().join("client"))
        .build()
        .unwrap();
    let served = reopened.get(&path("durable")).await.unwrap();

    assert_eq!(served.cache().source, CacheSource::Cache);
    assert_eq!(requests(&harness, "durable").await, 1);
    assert!(dir.path().join("client/cache.sqlite3").exists());
}

#[tokio::test]
async fn test_a_damaged_cache_file_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("client")).unwrap();
    std::fs::write(dir.path().join("client/cache.sqlite3"), vec![0x42; 8192]).unwrap();
    let harness =
        Harness::with_client(|builder| builder.storage_dir(dir.path().join("client"))).await;
    define(
        &harness,
        "rebuilt",
        "v1",
        json!({ "cache-control": "max-age=600" }),
    )
    .await;

    harness.client.get(&path("rebuilt")).await.unwrap();
    let second = harness.client.get(&path("rebuilt")).await.unwrap();

    assert_eq!(second.cache().source, CacheSource::Cache);
    assert!(dir.path().join("client/cache.sqlite3.damaged").exists());
}

#[tokio::test]
async fn test_the_size_budget_evicts_the_least_recently_used() {
    let harness = Harness::with_client(|builder| builder.cache_size(4_000)).await;
    let body = "x".repeat(900);
    for name in ["a", "b", "c", "d"] {
        define(
            &harness,
            name,
            &body,
            json!({ "cache-control": "max-age=600" }),
        )
        .await;
    }
    harness.client.get(&path("a")).await.unwrap();
    harness.client.get(&path("b")).await.unwrap();
    harness.client.get(&path("c")).await.unwrap();
    harness.client.get(&path("a")).await.unwrap(); // a is now more recent than b

    harness.client.get(&path("d")).await.unwrap(); // over budget: b goes

    // Reading with CacheOnly neither stores nor evicts, so it shows what is left.
    let mut kept = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let stored = harness
            .client
            .get(&path(name))
            .cache_policy(CachePolicy::CacheOnly)
            .await;
        if stored.is_ok() {
            kept.push(name);
        }
    }
    assert_eq!(
        kept,
        ["a", "c", "d"],
        "the least recently used was not the one evicted"
    );
}

#[tokio::test]
async fn test_users_get_their_own_partitions_and_sign_out_wipes_them() {
    let harness = Harness::start().await;
    let url = harness.server.base_url();
    let client = Client::builder(&url)
        .oauth(OAuthConfig::discover("roundtrip-demo", &url).unwrap())
        .token_store(Arc::new(MemoryStore::default()))
        .build()
        .unwrap();
    let session = client.session().unwrap();
    define(
        &harness,
        "private",
        "v1",
        json!({ "cache-control": "private, max-age=600" }),
    )
    .await;

    session
        .sign_in_with_password("alice", "wonderland")
        .await
        .unwrap();
    client.get(&path("private")).await.unwrap();
    let alice_again = client.get(&path("private")).await.unwrap();
    session.sign_out().await.unwrap();
    session
        .sign_in_with_password("bob", "builder")
        .await
        .unwrap();
    let bob = client.get(&path("private")).await.unwrap();

    assert_eq!(alice_again.cache().source, CacheSource::Cache);
    assert_eq!(
        bob.cache().source,
        CacheSource::Network,
        "bob was served alice's response"
    );
    assert_eq!(requests(&harness, "private").await, 2);
}
