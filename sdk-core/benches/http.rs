//! Request latency on loopback, side by side in one run:
//!
//! - raw reqwest (the baseline: same TLS stack, same connection pool),
//! - Roundtrip through its whole pipeline with the cache bypassed,
//! - Roundtrip answering from a fresh cached response (no network).
//!
//! Run with `cargo bench -p roundtrip --bench http`. It prints the median and 90th percentile
//! of each, and the ratios to the baseline. Numbers are for comparison within one run only.

use std::time::{Duration, Instant};

use roundtrip::{CachePolicy, Client};
use roundtrip_server::Config;

const WARMUP: usize = 200;
const SAMPLES: usize = 2_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = roundtrip_server::start(Config::default())
        .await
        .expect("server starts");
    let base = server.base_url();
    define_cached_resource(&base).await;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let raw = reqwest::Client::new();
    let client = Client::builder(&base).build().expect("client builds");
    let health = format!("{base}/health");

    let raw_times = measure(|| {
        let (raw, url) = (raw.clone(), health.clone());
        async move {
            let response = raw.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        }
    })
    .await;
    let sdk_times = measure(|| {
        let client = client.clone();
        async move {
            let response = client
                .get("/health")
                .cache_policy(CachePolicy::Bypass)
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    })
    .await;
    client
        .get("/cache/resources/bench")
        .await
        .expect("the resource is stored");
    let uncached = Client::builder(&base)
        .disable_cache()
        .build()
        .expect("client builds");
    let uncached_times = measure(|| {
        let client = uncached.clone();
        async move {
            assert_eq!(client.get("/health").await.unwrap().status(), 200);
        }
    })
    .await;
    let hit_times = measure(|| {
        let client = client.clone();
        async move {
            let response = client.get("/cache/resources/bench").await.unwrap();
            assert_eq!(response.attempts(), 0, "expected a cache hit");
        }
    })
    .await;

    let baseline = median(&raw_times);
    println!("loopback GET, {SAMPLES} sequential requests each (after {WARMUP} warm-up)");
    report("raw reqwest (baseline)", &raw_times, baseline);
    report("roundtrip, network", &sdk_times, baseline);
    report("roundtrip, no cache", &uncached_times, baseline);
    report("roundtrip, cache hit", &hit_times, baseline);
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

async fn measure<F, Fut>(mut request: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..WARMUP {
        request().await;
    }
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        request().await;
        times.push(started.elapsed());
    }
    times.sort();
    times
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

fn report(name: &str, sorted: &[Duration], baseline: Duration) {
    let p50 = median(sorted);
    let p90 = sorted[sorted.len() * 9 / 10];
    let ratio = p50.as_secs_f64() / baseline.as_secs_f64();
    println!("  {name:<24} median {p50:>10.1?}  p90 {p90:>10.1?}  ratio {ratio:.3}");
}
