//! Request latency on loopback, side by side in one run:
//!
//! - raw reqwest (the baseline: same TLS stack, same connection pool),
//! - Roundtrip through its whole pipeline with the cache bypassed,
//! - Roundtrip with the cache turned off,
//! - Roundtrip answering from a fresh cached response (no network).
//!
//! The four are interleaved request by request, in an order that rotates every round, so that
//! load from the rest of the machine falls on all of them alike. Run with `cargo bench -p roundtrip --bench http`;
//! it prints each one's median and 90th percentile and the ratio of medians to the baseline.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use roundtrip::{CachePolicy, Client};
use roundtrip_server::Config;

const WARMUP: usize = 200;
const SAMPLES: usize = 3_000;

type Request = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = roundtrip_server::start(Config::default())
        .await
        .expect("server starts");
    let base = server.base_url();
    let _ = rustls::crypto::ring::default_provider().install_default();

    let raw = reqwest::Client::new();
    let client = Client::builder(&base).build().expect("client builds");
    let uncached = Client::builder(&base)
        .disable_cache()
        .build()
        .expect("client builds");
    define_cached_resource(&base).await;
    client
        .get("/cache/resources/bench")
        .await
        .expect("the resource is stored");

    let health = format!("{base}/health");
    let variants: Vec<(&str, Request)> = vec![
        ("raw reqwest (baseline)", {
            Box::new(move || {
                let (raw, url) = (raw.clone(), health.clone());
                Box::pin(async move {
                    let response = raw.get(url).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    response.bytes().await.unwrap();
                })
            })
        }),
        ("roundtrip, cache bypassed", {
            let client = client.clone();
            Box::new(move || {
                let client = client.clone();
                Box::pin(async move {
                    let response = client
                        .get("/health")
                        .cache_policy(CachePolicy::Bypass)
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                })
            })
        }),
        ("roundtrip, cache off", {
            Box::new(move || {
                let client = uncached.clone();
                Box::pin(async move {
                    assert_eq!(client.get("/health").await.unwrap().status(), 200);
                })
            })
        }),
        ("roundtrip, cache hit", {
            Box::new(move || {
                let client = client.clone();
                Box::pin(async move {
                    let response = client.get("/cache/resources/bench").await.unwrap();
                    assert_eq!(response.attempts(), 0, "expected a cache hit");
                })
            })
        }),
    ];

    let mut times = vec![Vec::with_capacity(SAMPLES); variants.len()];
    for round in 0..WARMUP + SAMPLES {
        // Rotate the order every round so that no variant always follows the same one.
        for offset in 0..variants.len() {
            let index = (round + offset) % variants.len();
            let request = &variants[index].1;
            let started = Instant::now();
            request().await;
            if round >= WARMUP {
                times[index].push(started.elapsed());
            }
        }
    }

    println!("loopback GET, {SAMPLES} interleaved rounds (after {WARMUP} warm-up rounds)");
    for sorted in &mut times {
        sorted.sort();
    }
    let baseline = median(&times[0]);
    for ((name, _), sorted) in variants.iter().zip(&times) {
        let p50 = median(sorted);
        let p90 = sorted[sorted.len() * 9 / 10];
        let ratio = p50.as_secs_f64() / baseline.as_secs_f64();
        println!("  {name:<26} median {p50:>9.1?}  p90 {p90:>9.1?}  ratio {ratio:.3}");
    }
    server.shutdown().await;
}

async fn define_cached_resource(base: &str) {
    let control = Client::builder(base).disable_cache().build().unwrap();
    control
        .put("/_control/cache/resources/bench")
        .json(&serde_json::json!({
            "body": "{\"status\":\"ok\"}",
            "content_type": "application/json",
            "headers": { "cache-control": "max-age=3600" }
        }))
        .await
        .unwrap();
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}
