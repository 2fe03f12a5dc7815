//! Test support: an embedded reference server and helpers for its control API.

use std::time::Duration;

use roundtrip::{Client, RetryPolicy};
use roundtrip_server::{Config, RunningServer};
use serde_json::{Value, json};

/// A reference server on 127.0.0.1 with an in-memory database, and a client pointed at it.
pub struct Harness {
    pub server: RunningServer,
    pub client: Client,
    pub control: Client,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with_client(|builder| builder).await
    }

    /// Starts a server and builds the client with the given customisation.
    pub async fn with_client(
        customise: impl FnOnce(roundtrip::ClientBuilder) -> roundtrip::ClientBuilder,
    ) -> Harness {
        let server = roundtrip_server::start(Config::default())
            .await
            .expect("server starts");
        let fast_retries = RetryPolicy::default()
            .initial_delay(Duration::from_millis(20))
            .max_delay(Duration::from_secs(5));
        let builder = Client::builder(server.base_url()).retry_policy(fast_retries);
        let client = customise(builder).build().expect("client builds");
        let control = Client::builder(server.base_url())
            .retry_policy(RetryPolicy::never())
            .build()
            .expect("control client builds");

        Harness {
            server,
            client,
            control,
        }
    }

    /// Adds a fault rule (see the server contract, `POST /_control/faults`).
    pub async fn fault(&self, rule: Value) {
        self.control
            .post("/_control/faults")
            .json(&rule)
            .send()
            .await
            .expect("fault rule accepted");
    }

    /// Posts a JSON body to a control endpoint, such as `/_control/oauth/settings`.
    pub async fn control(&self, path: &str, body: Value) {
        self.control
            .post(path)
            .json(&body)
            .send()
            .await
            .expect("control call accepted");
    }

    /// The server's counters.
    pub async fn stats(&self) -> Value {
        self.control
            .get("/_control/stats")
            .send()
            .await
            .unwrap()
            .json()
            .unwrap()
    }

    /// How many requests reached the server for `route`, such as `GET /todos`.
    pub async fn hits(&self, route: &str) -> u64 {
        self.stats().await["by_route"][route].as_u64().unwrap_or(0)
    }

    /// Polls the counters until `check` holds, for effects the server sees asynchronously.
    pub async fn wait_for_stats(&self, check: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            let stats = self.stats().await;
            if check(&stats) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "server counters never reached the expected state: {}",
            self.stats().await
        );
    }

    pub async fn create_todo(&self, title: &str) -> Value {
        self.control
            .post("/todos")
            .json(&json!({ "title": title }))
            .send()
            .await
            .unwrap()
            .json()
            .unwrap()
    }
}

/// A plain reqwest client, for playing a browser or another party in tests.
pub fn raw_http(redirects: bool) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let policy = if redirects {
        reqwest::redirect::Policy::default()
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder().redirect(policy).build().unwrap()
}
